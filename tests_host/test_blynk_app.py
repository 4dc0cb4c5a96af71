"""Blynk as the real Blynk app and cloud behave (issue 10): the app's own
provisioning script against a simulated device and cloudsim's Blynk, which
answers as Blynk documents; reconfiguration that cannot lose a working
setup (also across a power cut); static IP; Edgent's sec strings."""

import json
import socket
import ssl
import struct
import time
import urllib.parse
import urllib.request

import pytest
from servers import RefusingBroker, Relay, dead_port, eventually
from test_dns import query
from test_portal import get, port_of
from test_profiles import admin, api, blynk_config, blynk_online, configure, provision

from cloudsim.mqttfront import mqtt_string, packet
from onboard_cli.ports import ephemeral_low

ACTIVATION = "/blynk/external/api/provision"
BAD_TOKEN = "Zz" * 16  # 32 characters of the right alphabet that no device has


def app_setup(port, token, newer=False, host="127.0.0.1", **extra):
    """Exactly what the Blynk app does: board_info, wifi_scan, /config, then
    poll until the device's access point is gone. (board_info, networks)."""
    status, _, body = get(port, "/board_info.json")
    assert status == 200
    info = json.loads(body)
    status, _, body = get(port, "/wifi_scan.json")
    assert status == 200
    nets = json.loads(body)
    fields = {"host": host, "port": 80, "port_ssl": 443, "blynk": token,
              "ssid": nets[0]["ssid"], "pass": "correct horse", **extra}
    if newer:
        fields["if"] = "wifi"
    status, _, body = get(port, "/config?" + urllib.parse.urlencode(fields))
    assert (status, json.loads(body)) == (200, {"status": "ok", "msg": "Trying to connect..."})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the app polls; the AP going away is the answer
        try:
            get(port, "/board_info.json")
        except OSError:
            return info, nets
        time.sleep(0.2)
    raise AssertionError("the device's access point never went away")


def activations(sim):
    return len(sim.arrivals(ACTIVATION))


def arrived(sim, n):
    """Wait until the server has had n activation requests in all."""
    eventually(lambda: activations(sim) >= n, f"{n} activations")


# The app's flows ---------------------------------------------------------------------------

def test_the_blynk_apps_script_brings_the_device_online_on_the_mqtt_port(device, cloudsim):
    prov = provision(cloudsim)
    # the config's host does not resolve: online only if the app's host is honoured
    d = device(config={**blynk_config(cloudsim), "host": "a..b"})
    tls = cloudsim.front.logins["tls"]
    info, nets = app_setup(port_of(d.wait_state("WAIT_CONFIG")), prov["token"])
    assert nets[0]["ssid"] == "home" and nets[0]["sec"] == "WPA2"
    assert info["fw_type"] == info["tmpl_id"] == "TMPL1a2b3c4d"  # fw_type: the template ID
    assert info["static_ip"] is True
    d.wait_state("RUNNING")
    assert cloudsim.front.logins["tls"] == tls + 1  # MQTT over TLS to the config's port
    cloud = d.store()["cloud"]
    assert (cloud["host"], cloud["app_port"], cloud["app_port_ssl"]) == ("127.0.0.1", 80, 443)


def test_the_newer_edgent_board_info_and_if_wifi_flow_brings_the_device_online(device,
                                                                                cloudsim):
    prov = provision(cloudsim)
    d = device(config=blynk_config(cloudsim))
    info, _ = app_setup(port_of(d.wait_state("WAIT_CONFIG")), prov["token"], newer=True)
    assert info["name"] == "Sensor" and info["uid"] == info["mac"].replace(":", "")
    assert info["ifs"] == [{"name": "wifi", "mac": info["mac"], "scan": True, "5ghz": False,
                            "static_ip": True}]
    d.wait_state("RUNNING")


def test_the_captive_dns_port_is_in_the_events_and_answers_blynk_setup(device):
    d = device()
    event = d.wait_state("WAIT_CONFIG")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(query(0x5E70, "blynk.setup"), ("127.0.0.1", event["dns"]))
        reply = s.recv(512)
    assert reply[:2] == b"\x5e\x70" and reply[-4:] == bytes([127, 0, 0, 1])


def test_the_devices_portal_and_dns_ports_lie_below_the_kernels_ephemeral_range(device):
    # a port in that range may be given to any client socket between being
    # found free and the device binding it: the device would fail to start
    event = device().wait_state("WAIT_CONFIG")
    assert max(event["dns"], port_of(event)) < ephemeral_low()


# Activation as Blynk documents it ----------------------------------------------------------

def test_an_invalid_token_is_703_and_setup_mode_after_exactly_one_activation(device,
                                                                             cloudsim):
    d = device(config=blynk_config(cloudsim))
    before = activations(cloudsim)
    app_setup(port_of(d.wait_state("WAIT_CONFIG")), BAD_TOKEN)
    event = d.wait_state("WAIT_CONFIG", last_error=703)
    assert event["portal"]
    assert activations(cloudsim) == before + 1
    assert not [e for e in d.events if "retry_in" in e]


def test_cloudsim_answers_an_invalid_token_as_documented(cloudsim):
    ctx = ssl.create_default_context(cafile=str(cloudsim.dir / "ca.pem"))
    url = f"https://127.0.0.1:{cloudsim.https_port}{ACTIVATION}?token={BAD_TOKEN}&templateId=TMPL1"
    with pytest.raises(urllib.error.HTTPError) as got:
        urllib.request.urlopen(url, context=ctx, timeout=10)
    assert got.value.code == 400
    assert json.loads(got.value.read()) == {"error": {"message": "Invalid token."}}


def test_a_200_with_an_empty_body_activates(device, cloudsim):
    prov = provision(cloudsim)
    ctx = ssl.create_default_context(cafile=str(cloudsim.dir / "ca.pem"))
    url = (f"https://127.0.0.1:{cloudsim.https_port}{ACTIVATION}"
           f"?token={prov['token']}&templateId=TMPL1a2b3c4d")
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        assert (resp.status, resp.read()) == (200, b"")  # what the device gets as well
    d = device(config=blynk_config(cloudsim))
    before = activations(cloudsim)
    app_setup(port_of(d.wait_state("WAIT_CONFIG")), prov["token"])
    d.wait_state("RUNNING")
    assert activations(cloudsim) == before + 1
    assert d.store()["cloud"]["activated"] is True


# Reconfiguration that cannot lose a working setup -----------------------------------------

def reconfigure(d, **fields):
    """Open setup mode with a short press and send new settings."""
    d.press(2000)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?" + urllib.parse.urlencode(fields))
    assert status == 200, body


def test_an_activated_token_is_not_activated_again_after_a_reboot(device, cloudsim):
    d, prov = blynk_online(device, cloudsim)
    before = activations(cloudsim)  # (the simulator's, this test's one among them)
    api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                             "name": "reboot"}, admin(cloudsim))
    d.wait_state("CONNECTING_NET")  # (the next boot's)
    d.wait_state("RUNNING")
    assert d.restarts() == 1
    assert activations(cloudsim) == before


def test_a_wrong_wifi_password_shows_722_then_the_device_is_back_on_its_working_setup(
        device, cloudsim):
    d, prov = blynk_online(device, cloudsim, portal={"idle_timeout_s": 3})
    kept = d.store()
    since = len(d.events)
    reconfigure(d, ssid="home", **{"pass": "wrong horse!"}, blynk=prov["token"])
    d.wait_state("WAIT_CONFIG", last_error=722)  # the reason, shown in setup mode
    # and kept on the flash, where board_info after a reboot reads it
    assert d.store()["state"]["last_error"] == 722
    tried = [e["state"] for e in d.events[since:]]
    tried = tried[:tried.index("CONNECTING_NET") + 2]
    assert tried[-1] == "WAIT_CONFIG", tried  # straight from the failed join to setup mode
    d.wait_state("RUNNING", timeout=40)  # idle timeout: the working setup again
    now = d.store()
    assert now["wifi"] == kept["wifi"] and now["cloud"] == kept["cloud"]
    assert "pending" not in now.get("state", {})


def test_new_settings_whose_network_is_lost_before_they_worked_show_701_and_keep_the_setup(
        device, cloudsim):
    # the new network joined, then gone while the new token's activation is in
    # flight: the trial ends there, its reason (701) shown in setup mode, not
    # after one more join of a network that is no longer there
    from onboard_cli.simdevice import DEFAULT_RADIO

    d, prov = blynk_online(device, cloudsim, portal={"idle_timeout_s": 3})
    kept = d.store()
    cloudsim.faults.add({"path": "/blynk/external/api/provision", "kind": "latency",
                         "seconds": 30})
    since = len(d.events)
    reconfigure(d, ssid="cafe", **{"pass": ""}, blynk=provision(cloudsim)["token"])
    d.wait_state("CONNECTING_CLOUD")  # cafe joined, the activation stalled
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "cafe"])
    d.wait_state("WAIT_CONFIG", last_error=701)
    assert [e["state"] for e in d.events[since:]].count("CONNECTING_NET") == 1
    d.wait_state("RUNNING", timeout=40)  # idle timeout: the working setup again
    now = d.store()
    assert now["wifi"] == kept["wifi"] and now["cloud"] == kept["cloud"]


BASEMENT = {"ssid": "basement", "bssid": "aa:bb:cc:00:00:0b", "rssi": -55, "sec": "OPEN",
            "ch": 3, "password": "", "behaviour": "no_ip"}  # joins, DHCP never answers


def test_a_press_during_a_join_opens_setup_mode_at_once_listing_the_networks(device,
                                                                             cloudsim):
    # as Blynk.Edgent leaves its join for setup mode; the station left connecting
    # could not scan (an ESP32 then lists no networks)
    from onboard_cli.simdevice import DEFAULT_RADIO

    d = device(config={**blynk_config(cloudsim), "wifi_timeout_s": 600},
               radio=[*DEFAULT_RADIO, BASEMENT])
    configure(d, ssid="basement", **{"pass": ""}, blynk=provision(cloudsim)["token"])
    d.wait_state("CONNECTING_NET")
    d.press(2000)
    event = d.wait_state("WAIT_CONFIG")  # (the join would have waited 600 s)
    assert event["last_error"] == 0  # the press is no failure to report
    status, _, body = get(port_of(event), "/wifi_scan.json")
    assert status == 200
    assert {n["ssid"] for n in json.loads(body)} == {n["ssid"] for n in [*DEFAULT_RADIO, BASEMENT]}


def test_a_press_during_the_join_of_new_settings_keeps_the_working_ones(device, cloudsim):
    from onboard_cli.simdevice import DEFAULT_RADIO

    token = provision(cloudsim)["token"]
    d = device(config={**blynk_config(cloudsim), "wifi_timeout_s": 600},
               radio=[*DEFAULT_RADIO, BASEMENT])
    configure(d, blynk=token)
    d.wait_state("RUNNING")
    kept = d.store()
    reconfigure(d, ssid="basement", **{"pass": ""}, blynk=token)
    d.wait_state("CONNECTING_NET")
    d.press(2000)
    assert d.wait_state("WAIT_CONFIG")["last_error"] == 0
    now = d.store()
    assert now["wifi"] == kept["wifi"] and "pending" not in now.get("state", {})


def test_a_network_that_gives_no_address_shows_723_on_the_portal_and_keeps_the_setup(
        device, cloudsim):
    from onboard_cli.simdevice import DEFAULT_RADIO

    prov = provision(cloudsim)
    d = device(config={**blynk_config(cloudsim), "wifi_timeout_s": 2},
               radio=[*DEFAULT_RADIO, BASEMENT])
    configure(d, blynk=prov["token"])
    d.wait_state("RUNNING")
    kept = d.store()
    reconfigure(d, ssid="basement", **{"pass": ""}, blynk=prov["token"])
    port = port_of(d.wait_state("WAIT_CONFIG", last_error=723))
    status, _, body = get(port, "/board_info.json")  # what the app shows the user
    assert (status, json.loads(body)["last_error"]) == (200, 723)
    assert d.store()["wifi"] == kept["wifi"]


def test_after_a_wrong_password_a_short_press_takes_the_device_back_to_its_working_setup(
        device, cloudsim):
    d, prov = blynk_online(device, cloudsim)  # idle timeout 600 s: only the button ends setup
    kept = d.store()
    reconfigure(d, ssid="home", **{"pass": "wrong horse!"}, blynk=prov["token"])
    d.wait_state("WAIT_CONFIG", last_error=722)
    d.press(2000)
    d.wait_state("RUNNING")
    assert d.store()["wifi"] == kept["wifi"]


def test_a_refused_token_shows_703_then_the_device_is_back_on_its_working_setup(device,
                                                                               cloudsim):
    d, prov = blynk_online(device, cloudsim, portal={"idle_timeout_s": 3})
    kept = d.store()
    before = activations(cloudsim)
    reconfigure(d, ssid="home", **{"pass": "correct horse"}, blynk=BAD_TOKEN)
    d.wait_state("WAIT_CONFIG", last_error=703)
    assert activations(cloudsim) == before + 1
    d.wait_state("RUNNING", timeout=40)
    assert d.store()["cloud"] == kept["cloud"]
    assert activations(cloudsim) == before + 1  # the working token needs no activation


def test_new_settings_whose_activation_failed_once_are_tried_again_and_replace_the_working_ones(
        device, cloudsim):
    # a server error may pass: Blynk.Edgent gives new settings 50 s of logins,
    # and onboard trial_s (default 50) seconds of tries after the first failure
    d, _ = blynk_online(device, cloudsim, backoff={"base": 0.05, "cap": 0.1})
    new = provision(cloudsim)["token"]
    cloudsim.faults.add({"path": ACTIVATION, "kind": "status", "status": 503})  # (once)
    before = activations(cloudsim)
    reconfigure(d, ssid="cafe", **{"pass": ""}, blynk=new)
    d.wait_state("RUNNING")
    assert activations(cloudsim) == before + 2  # the 503, then the one that worked
    store = d.store()
    assert store["cloud"]["token"] == new and store["cloud"]["activated"] is True
    assert [n["ssid"] for n in store["wifi"]["networks"]] == ["cafe", "home"]
    assert "pending" not in store.get("state", {})


def test_new_settings_that_keep_failing_are_tried_for_trial_s_then_the_working_ones_come_back(
        device, cloudsim):
    d, prov = blynk_online(device, cloudsim, backoff={"base": 0.05, "cap": 0.1}, trial_s=2,
                           portal={"idle_timeout_s": 3})
    kept = d.store()
    cloudsim.faults.add({"path": ACTIVATION, "kind": "status", "status": 503, "count": -1})
    try:
        before = activations(cloudsim)
        reconfigure(d, ssid="cafe", **{"pass": ""}, blynk=provision(cloudsim)["token"])
        d.wait_state("WAIT_CONFIG", last_error=702)  # the reason, shown in setup mode
        assert activations(cloudsim) >= before + 2  # tried again before giving up
    finally:
        cloudsim.faults.clear()
    d.wait_state("RUNNING", timeout=40)  # idle timeout: the working setup again
    now = d.store()
    assert now["wifi"] == kept["wifi"] and now["cloud"] == kept["cloud"]
    assert "pending" not in now.get("state", {})


def test_settings_sent_from_a_setup_mode_opened_during_a_trial_get_a_whole_trial_s(device,
                                                                                  cloudsim):
    # a trial failed once, then the button (held 2 s, past its trial_s of 1 s)
    # opened setup mode; settings sent there are new: their failures are
    # counted from their own first one, not from the trial before
    d, _ = blynk_online(device, cloudsim, backoff={"base": 0.05, "cap": 0.1}, trial_s=1)
    cloudsim.faults.add({"path": ACTIVATION, "kind": "status", "status": 503})
    cloudsim.faults.add({"path": ACTIVATION, "kind": "latency", "seconds": 5})
    try:
        before = activations(cloudsim)
        reconfigure(d, ssid="cafe", **{"pass": ""}, blynk=provision(cloudsim)["token"])
        arrived(cloudsim, before + 2)  # the trial's second try, stalled by the server
        d.press(2000)
        port = port_of(d.wait_state("WAIT_CONFIG"))
        assert d.events[-1]["last_error"] == 702  # the trial's failure, shown
    finally:
        cloudsim.faults.clear()
    new = provision(cloudsim)["token"]
    cloudsim.faults.add({"path": ACTIVATION, "kind": "status", "status": 503})  # (once)
    status, _, body = get(port, "/config?" + urllib.parse.urlencode(
        {"ssid": "cafe", "pass": "", "blynk": new}))
    assert status == 200, body
    d.wait_state("RUNNING")
    assert d.store()["cloud"]["token"] == new


def test_new_settings_told_to_come_back_after_trial_s_are_given_up_at_once(device, cloudsim):
    d, _ = blynk_online(device, cloudsim)  # trial_s 50: less than the cloud's hour
    kept = d.store()
    cloudsim.faults.add({"path": ACTIVATION, "kind": "retry_after", "seconds": 3600})
    before = activations(cloudsim)
    reconfigure(d, ssid="cafe", **{"pass": ""}, blynk=provision(cloudsim)["token"])
    d.wait_state("WAIT_CONFIG", last_error=702)
    assert activations(cloudsim) == before + 1
    assert not [e for e in d.events if "retry_in" in e]
    assert d.store()["cloud"] == kept["cloud"]


def test_new_settings_that_work_replace_the_working_ones(device, cloudsim):
    d, prov = blynk_online(device, cloudsim)
    new = api(cloudsim, "POST", "/blynk/api/v1/organization/device/provision/reprovision/token",
              {"deviceId": prov["deviceId"]}, admin(cloudsim))
    port = port_of(d.wait_state("WAIT_CONFIG", last_error=703))
    status, _, _ = get(port, "/config?" + urllib.parse.urlencode(
        {"ssid": "cafe", "pass": "", "blynk": new["token"]}))
    assert status == 200
    d.wait_state("RUNNING")
    store = d.store()
    assert store["cloud"]["token"] == new["token"]
    assert [n["ssid"] for n in store["wifi"]["networks"]] == ["cafe", "home"]
    assert "pending" not in store.get("state", {})


def test_save_1_stores_the_settings_at_once(device, cloudsim):
    d, prov = blynk_online(device, cloudsim)
    d.press(2000)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?" + urllib.parse.urlencode(
        {"ssid": "cafe", "pass": "", "blynk": prov["token"], "save": "1"}))
    assert json.loads(body)["msg"] == "Configuration saved"
    assert d.store()["wifi"]["networks"][0]["ssid"] == "cafe"


SWITCH = """
import json
import powercut
import ramblock
from onboard import trial
from onboard.store import Store

OLD = {"ssid": "old", "password": "old-pass-1"}
NEW = {"ssid": "new", "password": "new-pass-2", "ip": ["10.0.0.9", "255.0.0.0", "10.0.0.1",
                                                     "10.0.0.1", "10.0.0.1"]}

def prepare(s):
    s.put("wifi", networks=[OLD])
    s.put("cloud", token="O" * 32, activated=True, host="old.example")
    s.put("state", last_error=0, pending=dict(NEW, cloud={"token": "N" * 32, "activated": True,
                                                          "host": None}))

def which(s):
    # what a device booting on this record has: both setups, or the new one working
    pending = s.get("state").get("pending")
    wifi = s.get("wifi")["networks"]
    cloud = s.get("cloud")
    if pending:
        ok = (wifi == [OLD] and cloud == {"token": "O" * 32, "activated": True,
                                          "host": "old.example"}
              and pending["ssid"] == "new" and pending["cloud"]["token"] == "N" * 32)
        return "both" if ok else "lost"
    ok = wifi == [NEW, OLD] and cloud == {"token": "N" * 32, "activated": True}
    return "new" if ok else "lost"

kind = KIND
dev = powercut._fresh(kind)
ramblock.mount(dev, powercut._fs(kind), powercut.WHERE)
prepare(Store(powercut.PATH))
ramblock.umount(powercut.WHERE)
d = powercut._reopen(dev, kind)
s = Store(powercut.PATH)
s.load()
before = d.writes
trial.switch(s)
total = d.writes - before
ramblock.umount(powercut.WHERE)
for n in range(total + 1):
    d = powercut._reopen(dev, kind)
    s = Store(powercut.PATH)
    s.load()
    d.cut_after(n)
    try:
        trial.switch(s)
    except OSError:
        pass
    ramblock.umount(powercut.WHERE)
    after = powercut._reopen(d, kind)
    after.restore_power()
    r = Store(powercut.PATH)
    r.load()
    print(json.dumps({"cut": n, "got": which(r)}))
    ramblock.umount(powercut.WHERE)
"""


@pytest.mark.parametrize("kind", ["lfs", "lfs4k", "fat"])
def test_a_power_cut_at_every_write_of_the_switch_loses_neither_setup(mpy, report, kind):
    points = [json.loads(line) for line in mpy.run(SWITCH.replace("KIND", repr(kind))).lines
              if line.startswith("{")]
    got = [p["got"] for p in points]
    assert "lost" not in got, points
    assert got[0] == "both" and got[-1] == "new"
    report(f"power cut {kind:5} pending->working switch: {len(points)} cut points checked")


ARRIVE = """
import asyncio
import powercut
from onboard import setupmode
from onboard.clouds import blynk

class Device:  # what setupmode.arrive uses of the Runtime
    def __init__(self, store):
        self.real = self.store = store
        self.profile = blynk
        self.config = {}
        self.arrived = asyncio.Event()

def prepare(s):
    if BEFORE:
        s.put("wifi", networks=[{"ssid": "old", "password": "old-pass-1"}])
        s.put("cloud", token="O" * 32, activated=True)
        s.put("state", last_error=703)

fields = {"ssid": "new", "pass": "new-pass-2", "blynk": "N" * 32, "save": "1"}
powercut.sweep(KIND, prepare, lambda s: setupmode.arrive(Device(s), fields))
"""


@pytest.mark.parametrize("before", [False, True], ids=["first", "again"])
@pytest.mark.parametrize("kind", ["lfs", "fat"])
def test_a_power_cut_at_every_write_of_saved_settings_leaves_the_old_ones_or_all_new(
        mpy, report, kind, before):
    # the app's /config with save=1 (and the first settings a device gets):
    # the network and the token are new together, or neither is
    code = ARRIVE.replace("KIND", repr(kind)).replace("BEFORE", repr(before))
    lines = [json.loads(line) for line in mpy.run(code).lines if line.startswith("{")]
    points, summary = lines[:-1], lines[-1]
    assert summary["old"], "the settings must change the record"
    assert [p["got"] for p in points if p["got"] != "old"] == ["new"], points
    report(f"power cut {kind:5} settings saved ({'again' if before else 'first'}): "
           f"{len(points)} cut points checked")


# Static IP -----------------------------------------------------------------------------------

def test_a_static_address_is_what_the_joined_interface_reports(device, cloudsim):
    prov = provision(cloudsim)
    d = device(config=blynk_config(cloudsim))
    app_setup(port_of(d.wait_state("WAIT_CONFIG")), prov["token"], ip="192.168.1.50",
              mask="255.255.255.0", gw="192.168.1.1", dns="192.168.1.1")
    d.wait_state("RUNNING")
    assert "joined home at 192.168.1.50" in d.log_path.read_text()
    assert d.store()["wifi"]["networks"][0]["ip"] == ["192.168.1.50", "255.255.255.0",
                                                     "192.168.1.1", "192.168.1.1", "192.168.1.1"]


def test_the_unix_radio_reports_a_static_address_once_joined(mpy, tmp_path):
    radio = tmp_path / "radio.json"
    radio.write_text(json.dumps({"networks": [{"ssid": "home", "sec": "WPA2",
                                               "password": "correct horse"}]}))
    out = mpy.run(f"""
        import os, asyncio, network
        os.putenv("ONBOARD_RADIO", {str(radio)!r})
        from onboard import wifi
        sta = network.WLAN(network.STA_IF)
        ip = ["10.1.2.3", "255.255.0.0", "10.1.0.1", "10.1.0.2", "10.1.0.3"]
        print(asyncio.run(wifi.join(sta, "home", "correct horse", 5000, ip)), sta.ifconfig())
        print(asyncio.run(wifi.join(sta, "home", "correct horse", 5000)), sta.ifconfig()[0])
    """).lines
    assert out == ["0 ('10.1.2.3', '255.255.0.0', '10.1.0.1', '10.1.0.2')", "0 127.0.0.1"]


@pytest.mark.parametrize("field,value", [("ip", "192.168.1.300"), ("mask", "255.255.255"),
                                         ("gw", "a.b.c.d"), ("dns", "1.2.3.4 "),
                                         ("dns2", "01.2.3.4.5")])
def test_a_malformed_address_is_refused_naming_the_field_and_nothing_stored(device, field,
                                                                           value):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    fields = {"ssid": "home", "pass": "correct horse", "blynk": "a" * 32, "ip": "192.168.1.50",
              "mask": "255.255.255.0", "gw": "192.168.1.1", field: value}
    status, _, body = get(port, "/config?" + urllib.parse.urlencode(fields))
    assert status == 500  # Edgent's status for an invalid configuration
    assert json.loads(body)["msg"].startswith(field + ": ")
    assert d.store() == {}


@pytest.mark.parametrize("refused", [{"blynk": "short"}, {"host": "a b"}, {"port": "80x"}],
                         ids=["token", "host", "port"])
def test_settings_refused_by_the_clouds_check_change_nothing_stored(device, cloudsim, refused):
    # refused after the network's fields passed theirs: a phone on the open
    # setup network must not reorder, add or push out the saved networks
    d, prov = blynk_online(device, cloudsim)
    kept = d.store()
    d.press(2000)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    fields = {"ssid": "stranger", "pass": "password1", "blynk": prov["token"], **refused}
    status, _, body = get(port, "/config?" + urllib.parse.urlencode(fields))
    assert status == 500, body
    assert json.loads(body)["msg"].startswith(next(iter(refused)) + ": ")
    assert d.store() == kept


# Edgent's sec strings ------------------------------------------------------------------------

def test_the_unix_radio_refuses_an_unknown_sec_with_a_clear_error(mpy, tmp_path):
    radio = tmp_path / "radio.json"
    radio.write_text(json.dumps({"networks": [{"ssid": "home", "sec": "WPA2/PSK"}]}))
    run = mpy.run(f"""
        import os, network
        os.putenv("ONBOARD_RADIO", {str(radio)!r})
        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        try:
            sta.scan()
        except ValueError as e:
            print("refused:", e)
    """)
    assert run.lines == [f"refused: radio file {radio}: network 'home': sec 'WPA2/PSK' is not "
                         "one of OPEN, WEP, WPA, WPA2, WPA+WPA2, WPA2-EAP, WPA3, WPA2+WPA3, WAPI"]


def test_wep_keys_are_accepted_as_edgent_does(mpy):
    out = mpy.run("""
        from onboard import wifi
        for key in ("abcde", "abcdefghijklm", "0123456789", "0123456789abcdef0123456789"):
            wifi.check_credentials("net", key)
        for key in ("abcd", "abcdef"):
            try:
                wifi.check_credentials("net", key)
            except ValueError as e:
                print(e)
    """).lines
    assert len(out) == 2 and all(line.startswith("password: ") for line in out)


# cloudsim's Blynk MQTT as the real one -------------------------------------------------------

def mqtt_login(sim, token, code=0, user=b"device"):
    """A raw MQTT connection to cloudsim's Blynk front (plain port), its
    login answered with CONNACK code (0: logged in)."""
    s = socket.create_connection(("127.0.0.1", sim.front.port), timeout=10)
    body = mqtt_string(b"MQTT") + bytes((4, 0xC2)) + struct.pack(">H", 60)
    body += mqtt_string(b"raw") + mqtt_string(user) + mqtt_string(token.encode())
    s.sendall(packet(0x10, body))
    assert s.recv(4) == b"\x20\x02\x00" + bytes((code,))
    return s


def active_token(sim):
    prov = provision(sim)
    ctx = ssl.create_default_context(cafile=str(sim.dir / "ca.pem"))
    url = (f"https://127.0.0.1:{sim.https_port}{ACTIVATION}"
           f"?token={prov['token']}&templateId=TMPL1a2b3c4d")
    urllib.request.urlopen(url, context=ctx, timeout=10).close()
    return prov


def closed(s):
    try:
        return s.recv(64) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("user, active", [(b"device", False), (b"not-device", True)],
                         ids=["a token no device has", "an active token, another user name"])
def test_a_login_blynk_refuses_is_connack_4_and_the_connection_closed(cloudsim, user, active):
    # Blynk's device MQTT API: user name "device", the token as the password;
    # "0x04 Connection Refused" means the credentials
    token = active_token(cloudsim)["token"] if active else BAD_TOKEN
    s = mqtt_login(cloudsim, token, code=4, user=user)
    try:
        assert closed(s)
    finally:
        s.close()


def broker_reloads(sim):
    """How often Mosquitto has read its password file again, by its own log."""
    return sim.broker.log_path.read_bytes().count(b"Reloading config.")


def test_the_first_login_after_activation_leaves_the_broker_as_it_is(cloudsim):
    # activation gives the device its account on the broker behind the front,
    # as the other clouds' activations do: a login only uses it. (Made at the
    # first login instead, by a reload of Mosquitto, a storm of first logins
    # waited on the reloads; a device that gave up and logged in again was let
    # through to a broker that did not know it yet: CONNACK 5, 703 and setup
    # mode, seen in onboard fleet under load)
    prov = active_token(cloudsim)
    reloads = broker_reloads(cloudsim)
    mqtt_login(cloudsim, prov["token"]).close()
    assert broker_reloads(cloudsim) == reloads


def test_a_second_login_with_the_same_token_drops_the_first(cloudsim):
    prov = active_token(cloudsim)
    first = mqtt_login(cloudsim, prov["token"])
    second = mqtt_login(cloudsim, prov["token"])
    assert closed(first)
    second.sendall(b"\xc0\x00")  # PINGREQ: the second is served
    assert second.recv(2) == b"\xd0\x00"
    first.close()
    second.close()


def test_a_message_over_1024_bytes_with_its_topic_closes_the_connection(cloudsim):
    # Blynk counts the variable header (topic) and the payload: 8 + 1017
    s = mqtt_login(cloudsim, active_token(cloudsim)["token"])
    s.sendall(packet(0x30, mqtt_string(b"ds/big") + b"x" * 1017))
    assert closed(s)
    s.close()


def test_a_message_of_1024_bytes_with_its_topic_is_taken(cloudsim):
    s = mqtt_login(cloudsim, active_token(cloudsim)["token"])
    s.sendall(packet(0x30, mqtt_string(b"ds/big") + b"x" * 1016))
    s.sendall(b"\xc0\x00")  # PINGREQ: still served
    assert s.recv(2) == b"\xd0\x00"
    s.close()


@pytest.mark.parametrize("refused", [b"downlink/+/led", b"downlink/#/led", b"downlink/ds/+"])
def test_a_subscription_with_a_wildcard_blynk_does_not_take_is_refused(cloudsim, refused):
    # Blynk takes no single-level wildcard, and the multi-level one only at the end
    s = mqtt_login(cloudsim, active_token(cloudsim)["token"])
    s.sendall(packet(0x82, b"\x00\x07" + mqtt_string(refused) + b"\x01"))
    assert s.recv(5) == b"\x90\x03\x00\x07\x80"
    s.sendall(packet(0x82, b"\x00\x08" + mqtt_string(b"downlink/ds/#") + b"\x01"))
    assert s.recv(5) == b"\x90\x03\x00\x08\x01"
    s.close()


def test_a_subscription_outside_downlink_is_refused(cloudsim):
    s = mqtt_login(cloudsim, active_token(cloudsim)["token"])
    s.sendall(packet(0x82, b"\x00\x07" + mqtt_string(b"ds/#") + b"\x01"))
    assert s.recv(5) == b"\x90\x03\x00\x07\x80"
    s.sendall(packet(0x82, b"\x00\x08" + mqtt_string(b"downlink/#") + b"\x01"))
    assert s.recv(5) == b"\x90\x03\x00\x08\x01"
    s.close()


def test_mqtt_logins_are_logged_with_the_token_masked(cloudsim, monkeypatch):
    prov = active_token(cloudsim)
    lines = []
    monkeypatch.setattr(cloudsim, "_log", lines.append)
    mqtt_login(cloudsim, prov["token"]).close()
    logins = [line for line in lines if "mqtt login" in line]
    assert logins and f"device {prov['deviceId']}" in logins[0]
    assert not any(prov["token"] in line for line in lines)


def test_a_cloud_that_redirects_at_every_login_is_followed_after_growing_waits(device,
                                                                               cloudsim):
    # each login redirected to the same broker: the device follows, but each
    # next login after a backoff that grows (attempts 1, 2, 3, ...), not in a
    # loop of TLS logins and flash writes
    d, prov = blynk_online(device, cloudsim)
    _, attempts = retries_redirected_at_every_login(
        device, cloudsim, d, prov, f"mqtts://127.0.0.1:{cloudsim.front.tls_port}", 3)
    assert attempts == [1, 2, 3]


def retries_redirected_at_every_login(device, cloudsim, d, prov, target, n):
    """The device powered on again with every login redirected to target:
    (the device, the attempt numbers of its first n retries)."""
    blynk = cloudsim.clouds["blynk"]
    blynk.redirect_next_login(prov["deviceId"], target, every=True)
    try:
        d.kill()
        again = device(same_as=d, config=d.config)
        return again, [again.wait_note("retry_in", timeout=60)["attempt"] for _ in range(n)]
    finally:
        blynk.redirects.pop(prov["deviceId"], None)


def restarted_and_redirected(device, cloudsim, d, prov, target):
    """The device powered on again with its first login redirected to target,
    once it is back RUNNING after following it."""
    cloudsim.clouds["blynk"].redirect_next_login(prov["deviceId"], target)
    d.kill()
    again = device(same_as=d, config=d.config)
    for state in ("RUNNING", "CONNECTING_CLOUD", "RUNNING"):
        again.wait_state(state)
    return again


@pytest.mark.parametrize("tls", [True, False])
def test_a_redirect_right_after_connect_is_followed(device, cloudsim, tls):
    # as real Blynk redirects: a TLS session to an mqtts:// target, a plain one
    # (a device configured with "tls": false) to mqtt://; stored and logged in to
    port, kind = (cloudsim.front.tls_port, "tls") if tls else (cloudsim.front.port, "plain")
    d, prov = blynk_online(device, cloudsim, tls=tls, port=port)
    logins = cloudsim.front.logins[kind]
    assert "port" not in d.store()["cloud"]
    again = restarted_and_redirected(device, cloudsim, d, prov,
                                     f"mqtt{'s' if tls else ''}://localhost:{port}")
    assert cloudsim.front.logins[kind] == logins + 2
    cloud = again.store()["cloud"]
    assert (cloud["host"], cloud["port"], cloud["tls"]) == ("localhost", port, tls)


def home_device(device, cloudsim):
    """A Blynk device online at the host the app gave (localhost): (device, prov)."""
    prov = provision(cloudsim)
    d = device(config=blynk_config(cloudsim))
    configure(d, blynk=prov["token"], host="localhost")
    d.wait_state("RUNNING")
    return d, prov


def at_a_target_that_died(device, cloudsim):
    """A device online at a redirect's target (stored, with home: the app's
    localhost) that then stops answering: (device, prov)."""
    d, prov = home_device(device, cloudsim)
    relay = Relay(cloudsim.front.tls_port)
    try:
        d = restarted_and_redirected(device, cloudsim, d, prov,
                                     f"mqtts://127.0.0.1:{relay.port}")
        cloud = d.store()["cloud"]
        assert (cloud["port"], cloud["home"]) == (relay.port, ["localhost", None, None])
    finally:
        relay.close()
    return d, prov


def assert_back_home(d):
    cloud = d.store()["cloud"]
    assert cloud["host"] == "localhost" and {"port", "tls", "home"} & set(cloud) == set()


def test_a_redirect_to_a_host_that_cannot_be_reached_is_left_for_where_it_came_from(
        device, cloudsim):
    # nothing listens at the target: after one failed try the device logs in
    # where it was redirected from (the host the app gave), not at the dead
    # target for ever; a target that never worked is never written to flash
    d, prov = home_device(device, cloudsim)
    tls, gen = cloudsim.front.logins["tls"], d.store_generation()
    cloudsim.clouds["blynk"].redirect_next_login(prov["deviceId"],
                                                 f"mqtts://127.0.0.1:{dead_port()}")
    d.kill()
    again = device(same_as=d, config=d.config)
    for state in ("RUNNING", "CONNECTING_CLOUD"):
        again.wait_state(state)
    again.wait_note("retry_in", timeout=60)
    again.wait_state("RUNNING", timeout=60)
    assert cloudsim.front.logins["tls"] == tls + 2
    assert again.store_generation() == gen
    assert_back_home(again)


def test_a_stored_redirect_whose_target_died_is_left_for_where_it_came_from(device,
                                                                          cloudsim):
    # a target that worked is stored (and logged in to directly after a
    # reboot); once nothing answers there, the device goes back home
    d, prov = at_a_target_that_died(device, cloudsim)
    d.kill()
    again = device(same_as=d, config=d.config)
    again.wait_note("retry_in", timeout=60)
    again.wait_state("RUNNING", timeout=60)
    assert_back_home(again)


def test_a_redirects_target_that_refuses_the_token_is_703_and_never_stored(device,
                                                                             cloudsim):
    # a refused token stays refused (703, setup mode), as at any broker; the
    # target, which never worked, is not kept: the next try starts home
    d, prov = home_device(device, cloudsim)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cloudsim.certfile, cloudsim.keyfile)  # (cloudsim's own certificate)
    refuser = RefusingBroker(5, tls)
    try:
        cloudsim.clouds["blynk"].redirect_next_login(prov["deviceId"],
                                                     f"mqtts://127.0.0.1:{refuser.port}")
        d.kill()
        again = device(same_as=d, config=d.config)
        again.wait_state("WAIT_CONFIG", last_error=703, timeout=60)
    finally:
        refuser.close()
    assert refuser.refused == 1
    assert_back_home(again)


def test_new_settings_tried_while_the_stored_target_is_dead_go_online_at_home(device,
                                                                               cloudsim):
    # the same Wi-Fi and token sent again (no host: not the Blynk app) while
    # the stored target is dead: the trial goes home and its settings work
    d, prov = at_a_target_that_died(device, cloudsim)
    reconfigure(d, ssid="home", **{"pass": "correct horse"}, blynk=prov["token"])
    d.wait_state("RUNNING", timeout=60)
    assert "pending" not in d.store().get("state", {})
    assert_back_home(d)


def test_a_stored_targets_session_lost_once_online_stays_at_the_target(device, cloudsim):
    # a stored target that the device logged in to after a reboot, and that
    # then dropped it (a broker restart), is where it logs in again: only a
    # target that fails before the session is online sends it home
    d, prov = home_device(device, cloudsim)
    d = restarted_and_redirected(device, cloudsim, d, prov,
                                 f"mqtts://127.0.0.1:{cloudsim.front.tls_port}")
    d.kill()
    again = device(same_as=d, config=d.config)
    again.wait_state("RUNNING")
    cloudsim.front.kick(int(prov["deviceId"]))
    again.wait_state("CONNECTING_CLOUD", timeout=60)
    again.wait_state("RUNNING", timeout=60)
    cloud = again.store()["cloud"]
    assert (cloud["host"], cloud["port"]) == ("127.0.0.1", cloudsim.front.tls_port)


def test_a_home_that_redirects_every_login_to_a_dead_target_writes_no_flash(device,
                                                                           cloudsim):
    # home, redirect, the dead target, home again: each round after a growing
    # backoff, and none of it on flash
    d, prov = home_device(device, cloudsim)
    gen = d.store_generation()
    again, attempts = retries_redirected_at_every_login(
        device, cloudsim, d, prov, f"mqtts://127.0.0.1:{dead_port()}", 4)
    assert attempts == [1, 2, 3, 4]
    assert again.store_generation() == gen


def test_a_redirect_from_a_tls_session_to_plain_mqtt_is_not_followed(device, cloudsim):
    # the token would travel in the clear: the device stays where it is
    d, prov = blynk_online(device, cloudsim)
    plain, tls = cloudsim.front.logins["plain"], cloudsim.front.logins["tls"]
    cloudsim.clouds["blynk"].redirect_next_login(prov["deviceId"],
                                                 f"mqtt://127.0.0.1:{cloudsim.front.port}")
    d.kill()
    again = device(same_as=d, config=d.config)
    again.wait_state("RUNNING")
    # a message after the redirect: once it is noted, the redirect was handled before it
    cloudsim.downlink("blynk", prov["deviceId"], "ds/Power", "1")
    again.wait_message("downlink/ds/Power")
    assert [e["state"] for e in again.events].count("CONNECTING_CLOUD") == 1
    assert (cloudsim.front.logins["plain"], cloudsim.front.logins["tls"]) == (plain, tls + 1)
    assert "port" not in again.store()["cloud"]
