"""Setup mode on a whole simulated device, at its edges (found by the
mutation check, issue 13): the access point's name, captive mode by
default, and what is left once setup mode ends."""

import json
import socket
import time
import urllib.parse

from servers import eventually
from test_dns import query
from test_improv import improv_from_running, until
from test_portal import TOKEN, get, ok_reply, port_of
from test_profiles import blynk_config, provision

from onboard_cli.improv import RESULT, WIFI_SETTINGS, Serial, wifi_settings
from onboard_cli.simdevice import DEFAULT_RADIO


def test_the_access_point_is_named_after_the_last_two_bytes_of_the_mac(device):
    d = device()
    info = json.loads(get(port_of(d.wait_state("WAIT_CONFIG")), "/board_info.json")[2])
    assert info["ssid"] == "Acme Sensor-" + info["mac"].replace(":", "")[-4:].upper()


def test_the_portal_is_captive_unless_the_config_says_otherwise(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, headers, _ = get(port, "/generate_204", host="connectivitycheck.gstatic.com")
    assert (status, headers["location"]) == (302, f"http://127.0.0.1:{port}/")


def configured(device):
    """A device whose setup mode took settings and ended: (device, the WAIT_CONFIG event)."""
    d = device()
    event = d.wait_state("WAIT_CONFIG")
    query_ = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse", "blynk": TOKEN})
    assert ok_reply(get(port_of(event), "/config?" + query_))
    d.wait_state("CONNECTING_CLOUD")
    return d, event


def test_once_setup_mode_ends_the_events_name_no_portal(device):
    d, event = configured(device)
    after = [e["portal"] for e in d.events[d.events.index(event) + 1:]]
    assert after and set(after) == {None}


def test_once_setup_mode_ends_its_captive_dns_answers_no_more(device):
    d, event = configured(device)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.connect(("127.0.0.1", event["dns"]))
        s.send(query(0x5E71, "blynk.setup"))
        try:
            reply = s.recv(512)
        except ConnectionRefusedError:  # the port is closed: loopback says so at once
            reply = None
    assert reply is None


def test_a_password_the_radio_cannot_take_is_refused_naming_the_portals_pass_field(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?ssid=home&pass=sixchr&blynk=" + TOKEN)
    assert (status, json.loads(body)["msg"]) == (
        500, "pass: must be 8-63 characters, 64 hex digits, a WEP key, or empty")
    assert d.store() == {}


def test_an_ssid_too_long_is_refused_naming_ssid(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?ssid=" + "x" * 33 + "&pass=&blynk=" + TOKEN)
    assert (status, json.loads(body)["msg"]) == (500, "ssid: must be 1-32 bytes of text")
    assert d.store() == {}


def wait_log(d, text, timeout=20):
    """Until the device's log has this text (what the device saw and said)."""
    eventually(lambda: text in d.log_path.read_text(), f"{text!r} in the device log", timeout)


def test_a_short_press_during_the_first_setup_does_not_open_setup_mode_later(device, cloudsim):
    # the press asks for setup mode while the device is in it: once settings have
    # arrived, a network lost later is retried, not taken for that old request
    d = device(config={**blynk_config(cloudsim), "backoff": {"base": 0.05, "cap": 0.1}})
    port = port_of(d.wait_state("WAIT_CONFIG"))
    d.press(1500)
    wait_log(d, "button: setup mode")
    query_ = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse",
                                     "blynk": provision(cloudsim)["token"]})
    assert ok_reply(get(port, "/config?" + query_))
    d.wait_state("RUNNING")
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    after = d.wait_for(lambda e: "retry_in" in e or e["state"] == "WAIT_CONFIG",
                       "a retry or setup mode")
    assert "retry_in" in after, after


def test_settings_improv_has_joined_go_straight_to_the_cloud_without_joining_again(device,
                                                                                   tmp_path):
    d = device(serial=tmp_path / "ttyDEVICE")
    d.wait_state("WAIT_CONFIG")
    port = Serial(str(tmp_path / "ttyDEVICE"))
    try:
        port.send(wifi_settings("home", "correct horse"))
        until(port, RESULT, WIFI_SETTINGS)
    finally:
        port.close()
    d.wait_state("CONNECTING_CLOUD")
    states = [e["state"] for e in d.events]
    assert states[states.index("CONFIGURING"):] == ["CONFIGURING", "CONNECTING_CLOUD"]


def test_improv_settings_in_setup_mode_opened_from_running_are_joined(device, cloudsim,
                                                                    tmp_path):
    # setup mode opened from RUNNING: it has just made the station leave its
    # network (by DHCP), which ESP-IDF handles a moment later (see
    # boards/unix/network.py), before Improv's join starts
    d, data = improv_from_running(device, cloudsim, tmp_path / "tty")
    assert d.wait_state("CONFIGURING")
    assert data[0] == WIFI_SETTINGS


def test_with_nothing_stored_setup_mode_stays_open_through_a_short_press_until_settings_come(
        device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    d.press(1500)
    wait_log(d, "button: setup mode")  # over a second in setup mode, and a press seen
    query_ = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse", "blynk": TOKEN})
    assert ok_reply(get(port, "/config?" + query_))
    d.wait_state("CONNECTING_CLOUD")
    assert [e["state"] for e in d.events] == ["WAIT_CONFIG", "CONFIGURING", "CONNECTING_NET",
                                              "CONNECTING_CLOUD"]


def test_settings_saved_at_once_while_others_were_on_trial_leave_no_trial_behind(device,
                                                                                 cloudsim):
    from test_profiles import blynk_online

    d, prov = blynk_online(device, cloudsim)
    cloudsim.faults.add({"path": "/blynk/external/api/provision", "kind": "latency",
                         "seconds": 8})
    d.press(2000)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    trial = urllib.parse.urlencode({"ssid": "cafe", "pass": "",
                                    "blynk": provision(cloudsim)["token"]})
    assert ok_reply(get(port, "/config?" + trial))  # on trial: its activation stalls
    d.wait_state("CONNECTING_CLOUD")
    d.press(2000)  # setup mode again, the trial unfinished
    port = port_of(d.wait_state("WAIT_CONFIG"))
    saved = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse",
                                    "blynk": prov["token"], "save": 1})
    status, _, _ = get(port, "/config?" + saved)
    assert status == 200
    d.wait_state("RUNNING")
    assert "pending" not in d.store().get("state", {})
    assert d.restarts() == 0  # and no internal error on the way (it would reboot)


def ap_name_of(device, vendor, name):
    d = device(config={"vendor": vendor, "name": name})
    info = json.loads(get(port_of(d.wait_state("WAIT_CONFIG")), "/board_info.json")[2])
    return info["ssid"], "-" + info["mac"].replace(":", "")[-4:].upper()


def test_a_long_access_point_name_is_cut_to_the_32_bytes_an_ssid_may_have(device):
    ssid, suffix = ap_name_of(device, "Acme Industrial Controls", "Greenhouse Sensor")
    assert ssid == "Acme Industrial Controls Gr" + suffix and len(ssid.encode()) == 32


def test_a_long_access_point_name_is_never_cut_inside_a_utf8_character(device):
    # byte 27, where the cut falls, is the second byte of the 12th "é"
    ssid, suffix = ap_name_of(device, "Acm", "é" * 20)
    assert ssid == "Acm " + "é" * 11 + suffix


def test_board_info_gives_the_template_id_as_fw_type_unless_one_is_configured(device):
    def info(**config):
        d = device(config=config)
        return json.loads(get(port_of(d.wait_state("WAIT_CONFIG")), "/board_info.json")[2])

    assert info()["fw_type"] == "TMPL1a2b3c4d"  # the simulated device's tmpl_id
    assert info(fw_type="Sensor-Pro")["fw_type"] == "Sensor-Pro"


def test_a_page_with_utf8_text_has_its_length_in_bytes(device):
    d = device(config={"vendor": "Café", "name": "Sensör"})  # the page's title: the AP name
    status, headers, body = get(port_of(d.wait_state("WAIT_CONFIG")), "/")
    assert status == 200 and "Café Sensör-".encode() in body
    assert int(headers["content-length"]) == len(body)


def test_a_proof_of_possession_in_the_config_is_asked_for(device):
    d = device(config={"portal": {"pop": "pop-5678"}})
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?ssid=home&pass=correct+horse&blynk=" + TOKEN)
    assert (status, json.loads(body)["msg"]) == (403, "pop: missing or wrong")
    assert d.store() == {}


def test_the_captive_dns_answers_any_name_with_the_portal_unless_the_config_says_otherwise(
        device):
    event = device().wait_state("WAIT_CONFIG")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(query(0x5E72, "connectivitycheck.gstatic.com"), ("127.0.0.1", event["dns"]))
        reply = s.recv(512)
    assert reply[:2] == b"\x5e\x72" and reply[-4:] == bytes([127, 0, 0, 1])


def test_setup_mode_opened_by_a_press_stays_open_with_credentials_stored(device, cloudsim):
    from test_profiles import blynk_online

    d, _ = blynk_online(device, cloudsim)  # idle timeout: 600 s
    d.press(2000)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    calls, _ = d.led()
    d.led_after(calls, 8)  # setup mode's LED has blinked for 0.8 s: past its first look
    assert get(port, "/board_info.json")[0] == 200  # the portal still serves


def test_a_network_lost_in_setup_mode_leaves_the_scan_listing_the_ones_in_the_air(device,
                                                                                  cloudsim):
    # setup mode leaves the network, as Blynk.Edgent turns the station off for
    # it: a station kept joined would retry once its network went away, and
    # an ESP32 station that retries cannot scan (the portal would list nothing)
    from test_profiles import blynk_online

    d, _ = blynk_online(device, cloudsim)
    d.press(2000)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    deadline = time.monotonic() + 10
    while True:  # until the radio has read the change: home is no longer listed
        status, _, body = get(port, "/wifi_scan.json")
        names = {n["ssid"] for n in json.loads(body)}
        if "home" not in names or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (status, names) == (200, {"cafe"})
