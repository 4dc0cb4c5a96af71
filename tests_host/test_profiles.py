"""Cloud profiles end to end: a simulated device, configured through its
portal, against cloudsim (HTTPS API, Mosquitto)."""

import json
import re
import socket
import ssl
import urllib.request

import pytest
from conftest import Subscription, broker_messages
from test_portal import get, port_of

from cloudsim.mqttfront import mqtt_string, packet, publish
from onboard_cli.device import device_mac


def api(sim, method, path, body=None, headers=None):
    ctx = ssl.create_default_context(cafile=str(sim.dir / "ca.pem"))
    req = urllib.request.Request(f"https://127.0.0.1:{sim.https_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return json.loads(resp.read())


def admin(sim):
    return {"Authorization": f"Bearer {sim.admin_token}"}


def configure(d, waiting=None, **fields):
    """The app's /config with the home network and fields, on the portal
    that the WAIT_CONFIG event `waiting` names, else the next one's."""
    port = port_of(waiting or d.wait_state("WAIT_CONFIG"))
    query = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse", **fields})
    status, _, body = get(port, "/config?" + query)
    assert status == 200, body


def provision(sim):
    """A Blynk provision token and device id, made with the platform's admin token."""
    return api(sim, "POST", "/blynk/api/v1/organization/device/provision/token",
               {"orgId": 1, "ownerId": 1}, admin(sim))


def blynk_online(device, sim, **config):
    """A Blynk device configured through its portal and online."""
    prov = provision(sim)
    d = device(config={**blynk_config(sim), **config})
    configure(d, blynk=prov["token"])
    d.wait_state("RUNNING")
    return d, prov


def spokezone_device(device, sim, cpu="cpu-sz", **config):
    """A Spoke Zone device made through the API, a simulated device set up for
    it, and the portal fields that configure it: (device, fields, api record)."""
    user = api(sim, "POST", "/spokezone/login",
               {"username": "super", "password": "super-password"})["token"]
    dev = api(sim, "POST", "/spokezone/api/v2/devices", {"cpuId": cpu},
              {"x-access-token": user})
    d = device(config={"profile": "spokezone", "api": f"https://127.0.0.1:{sim.https_port}/spokezone",
                       "host": "127.0.0.1", "port": sim.broker.mqtts_port,
                       "ca": str(sim.dir / "ca.pem"), "time": sim.time_config(), **config})
    return d, {"token": dev["token"], "uuid": dev["uuid"], "cpu_id": cpu}, dev


def broker_logins(sim, user):
    """Mosquitto's log lines of the logins with this user name."""
    text = sim.broker.log_path.read_text(errors="replace")
    return [line for line in text.splitlines()
            if "New client connected" in line and f"u'{user}'" in line]


def blynk_config(sim):
    return {"profile": "blynk", "api": f"https://127.0.0.1:{sim.https_port}/blynk",
            "host": "127.0.0.1", "port": sim.front.tls_port, "ca": str(sim.dir / "ca.pem"),
            "time": sim.time_config()}


def test_blynk_token_activates_goes_online_and_messages_flow_both_ways(device, cloudsim):
    prov = provision(cloudsim)
    d = device(config=blynk_config(cloudsim))
    mcu = Subscription(cloudsim, f"blynk/{prov['deviceId']}/info/mcu")  # sent unretained
    configure(d, blynk=prov["token"])
    d.wait_state("CONNECTING_CLOUD")
    d.wait_state("RUNNING")
    assert cloudsim.clouds["blynk"].devices[prov["deviceId"]]["active"]
    (topic, payload), = mcu.messages()
    mcu.close()
    info = json.loads(payload)
    # type: fw_type, by default the template ID; build: the firmware's build date
    assert (info["tmpl"], info["type"], info["ver"]) == ("TMPL1a2b3c4d",) * 2 + ("1.0.0",)
    assert re.fullmatch(r"[A-Z][a-z]{2} [ 1-3]\d \d{4} \d\d:\d\d:\d\d", info["build"])
    api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                             "name": "ds/led", "payload": "1"}, admin(cloudsim))
    event = d.wait_message("downlink/ds/led")
    assert event["state"] == "RUNNING"


def test_blynk_downlink_ping_leaves_the_session_as_it_is(device, cloudsim):
    # a ping asks only whether the device is there: no new login follows, and
    # the next downlink reaches the device on the same session
    d, prov = blynk_online(device, cloudsim)
    logins = dict(cloudsim.front.logins)
    for name in ("ping", "ds/led"):
        api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                                 "name": name, "payload": "1"}, admin(cloudsim))
    d.wait_message("downlink/ds/led")
    assert cloudsim.front.logins == logins


def test_blynk_downlink_ping_sent_at_qos_1_is_acknowledged_by_the_device(device, cloudsim):
    # Blynk publishes its ping at QoS 1 for the device to answer with a PUBACK:
    # its subscription asks for QoS 1, so the broker delivers the ping at QoS 1
    # (at QoS 0 it would downgrade it, and no PUBACK would come)
    from servers import eventually

    d, prov = blynk_online(device, cloudsim)
    device_id = int(prov["deviceId"])
    acks = cloudsim.front.acks.get(device_id, 0)
    api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": device_id,
                                             "name": "ping", "payload": ""}, admin(cloudsim))
    eventually(lambda: cloudsim.front.acks.get(device_id, 0) > acks, "PUBACK from the device")
    assert cloudsim.front.acks[device_id] == acks + 1  # one, for the one ping


def test_blynk_downlink_reboot_restarts_the_device_which_comes_back_online(device, cloudsim):
    d, prov = blynk_online(device, cloudsim)
    mcu = Subscription(cloudsim, f"blynk/{prov['deviceId']}/info/mcu")
    api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                             "name": "reboot"}, admin(cloudsim))
    assert len(mcu.messages()) == 1  # the board's birth message of its next boot
    mcu.close()
    assert d.restarts() == 1


def test_a_session_that_ends_says_disconnect_to_the_broker(device, cloudsim):
    # an MQTT DISCONNECT before the socket closes: Mosquitto logs "Client X
    # disconnected." for it, and "closed its connection." for a bare close
    d, prov = blynk_online(device, cloudsim)
    log = cloudsim.broker.log_path
    login = broker_logins(cloudsim, f"blynk-{prov['deviceId']}")
    client_id = re.search(r" as (\S+) \(", login[-1]).group(1)
    mcu = Subscription(cloudsim, f"blynk/{prov['deviceId']}/info/mcu")
    try:
        api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                                 "name": "reboot"}, admin(cloudsim))
        mcu.messages()  # the next boot's: the first session has ended
    finally:
        mcu.close()
    ends = [line.split(": ", 1)[1] for line in log.read_text(errors="replace").splitlines()
            if line.split(": ", 1)[-1].startswith(f"Client {client_id} ")]
    assert ends == [f"Client {client_id} disconnected."]


def test_portal_reboot_restarts_the_device_into_setup_mode_again(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/reboot")
    assert status == 200
    d.wait_state("WAIT_CONFIG")
    assert d.restarts() == 1


def test_blynk_invalid_token_is_703_and_setup_mode_without_reboot(device, cloudsim):
    d = device(config=blynk_config(cloudsim))
    configure(d, blynk="x" * 32)
    d.wait_state("CONNECTING_CLOUD")
    event = d.wait_state("WAIT_CONFIG", last_error=703)
    assert event["portal"]
    assert d.restarts() == 0


def test_spokezone_device_token_goes_online_and_renews_before_expiry(device, cloudsim):
    user = api(cloudsim, "POST", "/spokezone/login",
               {"username": "super", "password": "super-password"})["token"]
    cloudsim.lifetimes["spokezone"] = 30
    try:
        dev = api(cloudsim, "POST", "/spokezone/api/v2/devices", {"cpuId": "cpu-sz-1"},
                  {"x-access-token": user})
    finally:
        cloudsim.lifetimes["spokezone"] = 7 * 24 * 3600
    cloudsim.lifetimes["spokezone"] = 30
    d = device(config={"profile": "spokezone",
                       "api": f"https://127.0.0.1:{cloudsim.https_port}/spokezone",
                       "host": "127.0.0.1", "port": cloudsim.broker.mqtts_port,
                       "ca": str(cloudsim.dir / "ca.pem"), "time": cloudsim.time_config()})
    try:
        configure(d, token=dev["token"], uuid=dev["uuid"], cpu_id="cpu-sz-1")
        d.wait_state("RUNNING")
        generation = d.store_generation()
        renewed = d.wait_note("renewed", timeout=40)
        online = d.wait_note("online", timeout=20)
    finally:
        cloudsim.lifetimes["spokezone"] = 7 * 24 * 3600
    stored = d.store()["cloud"]["token"]
    assert stored == cloudsim.clouds["spokezone"].devices[dev["id"]]["token"]
    assert renewed["t"] < online["t"]
    assert d.store_generation() == generation + 1  # exactly one write for the renewal


def test_mac_of_a_simulated_device_is_stable_per_flash(tmp_path):
    assert device_mac(tmp_path) == device_mac(tmp_path)
    assert device_mac(tmp_path) != device_mac(tmp_path / "x")


def att_config(sim, **config):
    """An AllThingsTalk device's config: the broker's login front (maker: user names)."""
    return {"profile": "allthingstalk", "host": "127.0.0.1", "port": sim.broker.login_tls_port,
            "ca": str(sim.dir / "ca.pem"), "time": sim.time_config(), **config}


LED = {"led": {"is": "actuator", "type": "boolean", "title": "LED"}}


def att_online(device, sim):
    """ground-2's AllThingsTalk device configured through its portal and
    online: (the simulated device, its device ID)."""
    att = sim.clouds["att"]
    device_id = next(d for d, v in att.devices.items() if v["ground"] == "ground-2")
    d = device(config=att_config(sim))
    configure(d, device_id=device_id, token=att.devices[device_id]["token"])
    d.wait_state("RUNNING")
    return d, device_id


def att_command(sim, device_id, value):
    """AllThingsTalk sends the device's led asset the command {"value": value}."""
    api(sim, "POST", "/_sim/downlink", {"cloud": "att", "device": device_id, "name": "led",
                                        "payload": json.dumps({"value": value})}, admin(sim))


def test_allthingstalk_maker_token_makes_its_asset_then_gets_a_command(device, cloudsim):
    att = cloudsim.clouds["att"]
    ground = api(cloudsim, "GET", "/att/ground/ground-1/devices", None,
                 {"Authorization": "Bearer " + att.grounds["ground-1"]})
    device_id = ground[0]["id"]
    token = att.devices[device_id]["token"]
    assert token.startswith("maker:")
    d = device(config=att_config(cloudsim, api=f"https://127.0.0.1:{cloudsim.https_port}/att",
                                 assets=LED))
    configure(d, device_id=device_id, token=token)
    d.wait_state("RUNNING")
    assert (token, True) in cloudsim.broker.front.logins  # the maker: user name, as given
    assets = api(cloudsim, "GET", f"/att/device/{device_id}/assets", None,
                 {"Authorization": "Bearer " + token})
    assert assets == [{"name": "led", "title": "LED", "is": "actuator",
                       "profile": {"type": "boolean"}}]
    states = Subscription(cloudsim, f"device/{device_id}/asset/led/state")
    try:
        att_command(cloudsim, device_id, False)
        d.wait_message(f"device/{device_id}/asset/led/command")
        (topic, payload), = states.messages(1)
    finally:
        states.close()
    assert json.loads(payload) == {"value": False}


def test_allthingstalk_assets_are_made_once_not_at_every_boot(device, cloudsim):
    att = cloudsim.clouds["att"]
    device_id = att.add_device("ground-1", "once")
    path = f"/att/device/{device_id}/asset/led"
    config = att_config(cloudsim, api=f"https://127.0.0.1:{cloudsim.https_port}/att", assets=LED)
    d = device(config=config)
    configure(d, device_id=device_id, token=att.devices[device_id]["token"])
    d.wait_state("RUNNING")
    assert len(cloudsim.arrivals(path, "PUT")) == 1
    d.kill()
    again = device(same_as=d, config=config)
    again.wait_state("RUNNING")
    assert len(cloudsim.arrivals(path, "PUT")) == 1
    assert list(again.store()["cloud"]["assets"]) == ["led"]


def test_allthingstalk_command_reaches_the_device_and_its_state_comes_back(device, cloudsim):
    d, device_id = att_online(device, cloudsim)
    states = Subscription(cloudsim, f"device/{device_id}/asset/led/state")
    try:
        att_command(cloudsim, device_id, True)
        event = d.wait_message(f"device/{device_id}/asset/led/command")
        assert event["state"] == "RUNNING"
        (topic, payload), = states.messages(1)
    finally:
        states.close()
    assert json.loads(payload) == {"value": True}


def test_allthingstalk_state_sent_back_for_a_command_is_not_kept_by_the_broker(device,
                                                                            cloudsim):
    # published unretained, as AllThingsTalk's Arduino WiFi SDK does (its
    # PubSubClient publish(topic, json, false)): one who subscribes later is
    # not handed an old state
    _, device_id = att_online(device, cloudsim)
    topic = f"device/{device_id}/asset/led/state"
    states = Subscription(cloudsim, topic)
    try:
        att_command(cloudsim, device_id, True)
        states.messages(1)  # its state came back
    finally:
        states.close()
    later = Subscription(cloudsim, topic)
    try:
        att_command(cloudsim, device_id, False)
        (_, payload), *_ = later.messages(1)
    finally:
        later.close()
    assert json.loads(payload) == {"value": False}  # the first it got: not the kept True


def test_allthingstalk_state_sent_back_for_a_command_is_published_at_qos_1(device, cloudsim):
    # as the profile's own publish_state: the broker acknowledges each state
    _, device_id = att_online(device, cloudsim)
    states = Subscription(cloudsim, f"device/{device_id}/asset/led/state", qos=1)
    try:
        att_command(cloudsim, device_id, True)
        states.messages(1)
    finally:
        states.close()
    assert states.qos == [1]


def test_allthingstalk_without_keepalive_s_the_device_asks_for_its_wifi_sdks_15_s(
        device, cloudsim):
    # seen in the broker's log of the login, which the login front passes on
    # as the token's alias
    from servers import eventually

    d, device_id = att_online(device, cloudsim)
    assert "keepalive_s" not in d.config
    alias = cloudsim.broker.aliases[cloudsim.clouds["att"].devices[device_id]["token"]][0]
    eventually(lambda: broker_logins(cloudsim, alias), "the device's login in the log")
    assert ", k15, " in broker_logins(cloudsim, alias)[-1]  # (its latest: this device's)


def first_heard(sim, port, user, password, topics):
    """The first topic that this user, subscribed to everything (#), is handed
    when the cloud publishes to each of topics in turn: a topic it may not
    read is never handed to it (Mosquitto grants the subscription; reads are
    checked at delivery)."""
    sub = Subscription(sim, "#", login=(user, password), port=port)
    try:
        for topic in topics:
            publish(sim.broker.mqtt_port, *sim.internal, topic, "x")
        return sub.messages(1)[0][0]
    finally:
        sub.close()


def first_relayed(sim, port, user, password, topics):
    """The first topic a reader subscribed to everything (cloudsim's own
    login) is handed when this user publishes to each of topics in turn, each
    acknowledged before the next (QoS 1): a publish outside what the user may
    write is dropped by the broker."""
    reader = Subscription(sim, "#")
    try:
        for topic in topics:
            publish(port, user, password, topic, "x", qos=1)
        while True:  # (past what else the broker holds: earlier tests' retained messages)
            for message in reader.messages(1):
                if message[0] in topics:
                    return message[0]
    finally:
        reader.close()


# what a device's token may read (handed by the cloud) and publish, each under its own topics
SCOPES = [(first_heard, "ctrl", "command"), (first_relayed, "mon", "state")]
SCOPE_IDS = ["reads", "publishes"]


@pytest.mark.parametrize("heard, sz_leaf, att_leaf", SCOPES, ids=SCOPE_IDS)
def test_a_spokezone_device_token_reads_and_publishes_under_its_own_prefix_only(
        cloudsim, heard, sz_leaf, att_leaf):
    # device tokens are for the device's own data, under its token's prefix
    user = api(cloudsim, "POST", "/spokezone/login",
               {"username": "super", "password": "super-password"})["token"]
    dev = api(cloudsim, "POST", "/spokezone/api/v2/devices", {"cpuId": f"cpu-{sz_leaf}"},
              {"x-access-token": user})
    own, other = f"mrs/d/{dev['id']}/{sz_leaf}/x", f"mrs/d/{dev['id'] + 1}/{sz_leaf}/x"
    assert heard(cloudsim, cloudsim.broker.mqtt_port, dev["token"], dev["token"],
                 [other, own]) == own


@pytest.mark.parametrize("heard, sz_leaf, att_leaf", SCOPES, ids=SCOPE_IDS)
def test_an_allthingstalk_device_token_reads_and_publishes_its_own_devices_topics_only(
        cloudsim, heard, sz_leaf, att_leaf):
    att = cloudsim.clouds["att"]
    device_id = att.add_device(f"ground-{att_leaf}", "scope")
    other = next(d for d in att.devices if d != device_id)
    own, theirs = f"device/{device_id}/asset/a/{att_leaf}", f"device/{other}/asset/a/{att_leaf}"
    assert heard(cloudsim, cloudsim.broker.login_port,
                 att.devices[device_id]["token"], "x", [theirs, own]) == own


def test_an_allthingstalk_token_given_as_the_password_is_refused(cloudsim):
    # AllThingsTalk's SDKs log in with the device token as the user name
    att = cloudsim.clouds["att"]
    token = att.devices[att.add_device("ground-3", "password")]["token"]
    with socket.create_connection(("127.0.0.1", cloudsim.broker.login_port), timeout=10) as s:
        s.sendall(packet(0x10, mqtt_string(b"MQTT") + bytes((4, 0xC2)) + b"\x00\x3c"
                         + mqtt_string(b"raw") + mqtt_string(b"anything")
                         + mqtt_string(token.encode())))
        assert s.recv(4) == b"\x20\x02\x00\x05"  # CONNACK 5: not authorised


def test_allthingstalk_wrong_token_is_703(device, cloudsim):
    d = device(config=att_config(cloudsim))
    configure(d, device_id="nobody", token="maker-not-a-real-token")
    event = d.wait_state("WAIT_CONFIG", last_error=703)
    assert event["portal"]  # back in setup mode, portal open


def test_blynk_redirect_is_followed_and_persists_across_a_restart(device, cloudsim):
    d, prov = blynk_online(device, cloudsim)
    tls = cloudsim.front.logins["tls"]
    api(cloudsim, "POST", "/_sim/downlink",
        {"cloud": "blynk", "device": prov["deviceId"], "name": "redirect",
         "payload": f"mqtts://localhost:{cloudsim.front.tls_port}"}, admin(cloudsim))
    d.wait_state("CONNECTING_CLOUD")
    d.wait_state("RUNNING")
    assert cloudsim.front.logins["tls"] == tls + 1
    cloud = d.store()["cloud"]
    assert (cloud["host"], cloud["port"]) == ("localhost", cloudsim.front.tls_port)
    d.kill()
    again = device(same_as=d, config=blynk_config(cloudsim))
    again.wait_state("RUNNING")
    assert cloudsim.front.logins["tls"] == tls + 2
    assert again.store()["cloud"]["host"] == "localhost"


def test_blynk_reprovision_refuses_the_old_token_and_the_new_one_works(device, cloudsim):
    d, prov = blynk_online(device, cloudsim)
    new = api(cloudsim, "POST", "/blynk/api/v1/organization/device/provision/reprovision/token",
              {"deviceId": prov["deviceId"]}, admin(cloudsim))
    assert new["deviceId"] == prov["deviceId"]
    event = d.wait_state("WAIT_CONFIG", last_error=703)  # kicked; the old token is refused
    port = port_of(event)
    status, _, _ = get(port, "/config?" + urllib.parse.urlencode(
        {"ssid": "home", "pass": "correct horse", "blynk": new["token"]}))
    assert status == 200
    d.wait_state("RUNNING")
    assert d.store()["cloud"]["token"] == new["token"]


def test_device_log_and_events_never_show_a_secret(device, cloudsim):
    prov = provision(cloudsim)
    d = device(config={**blynk_config(cloudsim), "portal": {"pop": "pop-5ecret-42"}})
    configure(d, blynk=prov["token"], pop="pop-5ecret-42")
    d.wait_state("RUNNING")
    api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                             "name": "reconfigure"}, admin(cloudsim))
    event = d.wait_state("WAIT_CONFIG")
    port = port_of(event)
    get(port, "/config?ssid=home&pass=correct+horse&pop=wrong&blynk=" + prov["token"])
    seen = d.shown()
    for secret in (prov["token"], "correct horse", "pop-5ecret-42"):
        assert secret not in seen
    assert "state RUNNING" in seen  # the log was written


def test_spokezone_messages_flow_both_ways(device, cloudsim):
    d, fields, dev = spokezone_device(device, cloudsim)
    configure(d, **fields)
    d.wait_state("RUNNING")
    (topic, payload), = broker_messages(cloudsim, f"mrs/d/{dev['id']}/status")
    assert json.loads(payload) == {"status": "online", "fw": "1.0.0"}
    api(cloudsim, "POST", "/_sim/downlink", {"cloud": "spokezone", "device": dev["id"],
                                             "name": "config", "payload": "{}"}, admin(cloudsim))
    assert d.wait_message(f"mrs/d/{dev['id']}/ctrl/config")["state"] == "RUNNING"


def test_a_retained_command_is_not_acted_on_at_login(device, cloudsim):
    # a broker that kept a reconfigure (retained) hands it over at every
    # login: acted on, it would put the device in setup mode each time (a
    # retained reboot: a reboot loop). Sent while the device is off.
    d, fields, dev = spokezone_device(device, cloudsim)
    configure(d, **fields)
    d.wait_state("RUNNING")
    d.kill()
    topic, _ = cloudsim.clouds["spokezone"].downlink_topic(dev["id"], "reconfigure")
    publish(cloudsim.broker.mqtt_port, *cloudsim.internal, topic, "now", retain=True)
    try:
        again = device(same_as=d, config=d.config)
        again.wait_state("RUNNING")
        # a message after it: once it is noted, the retained one was handled
        api(cloudsim, "POST", "/_sim/downlink", {"cloud": "spokezone", "device": dev["id"],
                                                 "name": "config", "payload": "{}"},
            admin(cloudsim))
        again.wait_message(f"mrs/d/{dev['id']}/ctrl/config")
        assert "WAIT_CONFIG" not in [e["state"] for e in again.events]
    finally:  # (an empty retained message removes the kept one)
        publish(cloudsim.broker.mqtt_port, *cloudsim.internal, topic, "", retain=True)


def test_blynk_reconfigure_opens_setup_and_idle_timeout_returns_to_the_stored_token(device,
                                                                                     cloudsim):
    d, prov = blynk_online(device, cloudsim, portal={"idle_timeout_s": 2})
    api(cloudsim, "POST", "/blynk/api/v1/organization/device/provision/reconfigure",
        {"deviceId": prov["deviceId"]}, admin(cloudsim))
    d.wait_state("WAIT_CONFIG")
    d.wait_state("RUNNING", timeout=30)  # nobody configured: back with what was stored
    assert d.store()["cloud"]["token"] == prov["token"]
