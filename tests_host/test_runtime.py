"""The device's state machine: restarts, the button, Wi-Fi loss, idle setup
mode, and an event loop that stays responsive while a cloud call stalls."""

import json
import socket

import pytest
from test_portal import get, port_of
from test_profiles import admin, api, blynk_config, configure, provision
from test_profiles import blynk_online as online_blynk

from onboard_cli.simdevice import DEFAULT_RADIO


def test_killed_device_comes_back_online_without_setup_and_without_a_boot_write(device,
                                                                                 cloudsim):
    d, _ = online_blynk(device, cloudsim)
    generation = d.store_generation()
    d.kill()
    again = device(same_as=d, config=blynk_config(cloudsim))
    again.wait_state("RUNNING")
    assert [e["state"] for e in again.events] == ["CONNECTING_NET", "CONNECTING_CLOUD",
                                                   "RUNNING"]
    assert again.store_generation() == generation


def test_holding_the_button_10s_resets_to_setup_with_the_store_cleared(device, cloudsim):
    d, _ = online_blynk(device, cloudsim)
    d.press(10500)
    d.wait_state("RESET_CONFIG", timeout=20)
    d.wait_state("WAIT_CONFIG")
    assert "wifi" not in d.store() and "cloud" not in d.store()


def states_from(d, state):
    """The device's states from the last time it showed `state`, a state
    repeated by the events that follow it (notes) counted once."""
    states = [e["state"] for e in d.events]
    states = states[len(states) - 1 - states[::-1].index(state):]
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


def test_a_button_held_20s_resets_once_and_setup_takes_the_next_credentials(device, cloudsim):
    # held on after the 10 s reset, the button is not read as a new press:
    # no second reset while it is held, at once or 10 s later; then setup
    # mode takes the app's credentials as after any reset
    d, _ = online_blynk(device, cloudsim)
    d.press(20500)
    d.wait_state("RESET_CONFIG", timeout=20)
    waiting = d.wait_state("WAIT_CONFIG")
    d.release_seen()
    configure(d, waiting, blynk=provision(cloudsim)["token"])
    d.wait_for(lambda e: e["state"] in ("RUNNING", "WAIT_CONFIG"), "RUNNING or WAIT_CONFIG")
    assert states_from(d, "RESET_CONFIG") == ["RESET_CONFIG", "WAIT_CONFIG", "CONFIGURING",
                                              "CONNECTING_NET", "CONNECTING_CLOUD", "RUNNING"]
    assert [e["state"] for e in d.events].count("RESET_CONFIG") == 1


def test_the_10s_hold_in_setup_mode_clears_the_store_and_shows_wait_config_again(device,
                                                                                  cloudsim):
    # as Blynk.Edgent's reset ends in WAIT_CONFIG wherever it came from; the
    # portal goes on and takes the app's settings
    d, _ = online_blynk(device, cloudsim)
    waiting = d.press(2000) or d.wait_state("WAIT_CONFIG")
    d.release_seen()
    d.press(10500)
    d.wait_state("RESET_CONFIG", timeout=20)
    d.wait_state("WAIT_CONFIG")
    assert "wifi" not in d.store() and "cloud" not in d.store()
    configure(d, waiting, blynk=provision(cloudsim)["token"])
    d.wait_state("RUNNING")


def test_a_reset_the_flash_refuses_still_opens_setup_and_loses_nothing(device, cloudsim):
    # the store's next write cannot be made (its temporary file's name is
    # taken by a folder): the 10 s hold's reset fails, and setup mode opens
    # all the same, on the settings as they were
    d, _ = online_blynk(device, cloudsim)
    before = d.store()
    (d.flash / "onboard.json.tmp").mkdir()
    d.press(10500)
    d.wait_state("RESET_CONFIG", timeout=20)
    d.wait_state("WAIT_CONFIG")
    assert d.store() == before


@pytest.mark.parametrize("ms", [500, 4000, 9000])
def test_a_press_shorter_than_1s_or_held_3_to_10s_changes_nothing(device, cloudsim, ms):
    # only a 1-3 s press opens setup mode and only a 10 s hold resets: a tap,
    # or a hold let go before 10 s, leaves the device online as it was
    d, prov = online_blynk(device, cloudsim)
    before, since, logins = d.store(), len(d.events), dict(cloudsim.front.logins)
    d.press(ms)
    d.release_seen()  # (and acted on: a press that opens setup mode ends the session at once)
    # the session goes on: the app's next message reaches the device on it
    api(cloudsim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                             "name": "ds/led", "payload": "1"}, admin(cloudsim))
    d.wait_message("downlink/ds/led")
    assert {e["state"] for e in d.events[since:]} == {"RUNNING"}
    assert cloudsim.front.logins == logins
    assert d.store() == before


def test_short_press_opens_setup_and_idle_timeout_returns_to_the_same_credentials(device,
                                                                                   cloudsim):
    d, prov = online_blynk(device, cloudsim, portal={"idle_timeout_s": 2})
    before = d.store()
    d.press(2000)
    d.wait_state("WAIT_CONFIG")
    d.wait_state("RUNNING", timeout=30)
    assert d.store()["wifi"] == before["wifi"]
    assert d.store()["cloud"]["token"] == prov["token"]


def test_setup_mode_nobody_uses_idles_back_online_without_an_error_or_a_reboot(device, cloudsim):
    # no request reaches the portal: its idle time counts from when it started
    d, _ = online_blynk(device, cloudsim, portal={"idle_timeout_s": 2})
    d.press(2000)
    d.wait_state("WAIT_CONFIG")
    d.wait_state("RUNNING", timeout=30)
    assert "ERROR" not in [e["state"] for e in d.events]
    assert d.restarts() == 0


def test_wifi_down_for_a_while_backs_off_keeps_credentials_and_comes_back(device, cloudsim):
    d, _ = online_blynk(device, cloudsim, backoff={"base": 0.2, "cap": 1})
    stored = d.store()
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    retries = [d.wait_note("retry_in") for _ in range(3)]
    assert all(0 <= r["retry_in"] <= 1 for r in retries)
    assert {r["last_error"] for r in retries} <= {701, 720}
    assert d.store()["wifi"] == stored["wifi"] and d.store()["cloud"] == stored["cloud"]
    d.set_radio(DEFAULT_RADIO)
    d.wait_state("RUNNING", timeout=30)


def test_back_online_after_a_failure_the_error_is_cleared_on_the_flash_too(device, cloudsim):
    # (board_info and the next boot read the flash's: an error past is not shown as now)
    d, _ = online_blynk(device, cloudsim, backoff={"base": 0.2, "cap": 1})
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    d.wait_note("retry_in")
    assert d.store()["state"]["last_error"] in (701, 720)
    d.set_radio(DEFAULT_RADIO)
    assert d.wait_state("RUNNING", timeout=30)["last_error"] == 0
    assert d.store()["state"]["last_error"] == 0  # (read back through Store)


def test_while_the_wifi_stays_down_each_retry_counts_one_more_attempt(device, cloudsim):
    d, _ = online_blynk(device, cloudsim, backoff={"base": 0.05, "cap": 0.1})
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    assert [d.wait_note("retry_in")["attempt"] for _ in range(4)] == [1, 2, 3, 4]


def test_setup_mode_starts_the_count_of_failed_tries_anew(device, cloudsim):
    # three failed tries, then setup mode (a press) that idles back: the next
    # failed try is the first again, its wait drawn from the backoff's base
    d, _ = online_blynk(device, cloudsim, portal={"idle_timeout_s": 1},
                        backoff={"base": 0.05, "cap": 0.1})
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    assert [d.wait_note("retry_in")["attempt"] for _ in range(3)] == [1, 2, 3]
    d.press(2000)
    d.wait_state("WAIT_CONFIG")
    d.wait_state("CONNECTING_NET", timeout=30)  # (idled back)
    assert d.wait_note("retry_in")["attempt"] == 1


def test_a_radio_that_hears_nothing_more_is_started_again_and_the_device_comes_back(device,
                                                                                 cloudsim):
    # the station loses its network and no join finds it again until the radio
    # is turned off and on: the device does so at its third failed try in a row
    d, _ = online_blynk(device, cloudsim, rejoin_after=3,
                        backoff={"base": 0.05, "cap": 0.1})
    logins = cloudsim.front.logins["tls"]
    d.set_radio(DEFAULT_RADIO, deaf=1)
    assert [d.wait_note("retry_in")["last_error"] for _ in range(3)] == [701, 720, 720]
    d.wait_state("RUNNING", timeout=30)
    assert cloudsim.front.logins["tls"] == logins + 1


def test_while_the_saved_network_is_out_of_the_air_each_try_ends_at_the_join_with_720(
        device, cloudsim):
    d, _ = online_blynk(device, cloudsim, backoff={"base": 0.05, "cap": 0.1})
    since = len(d.events)
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    codes = [d.wait_note("retry_in")["last_error"] for _ in range(3)]
    assert codes == [701, 720, 720]  # lost while online, then not found by each join
    assert d.store()["state"]["last_error"] == 720  # as the flash keeps it
    assert "CONNECTING_CLOUD" not in [e["state"] for e in d.events[since:]]


def test_wifi_timeout_s_bounds_the_runtimes_join(device, cloudsim):
    # the radio takes 3 s to associate with this network: the join given 1 s
    # ends as a timeout (723), back in setup mode
    d = device(config={**blynk_config(cloudsim), "wifi_timeout_s": 1},
               radio=[{**n, "behaviour": "slow"} for n in DEFAULT_RADIO])
    configure(d, blynk=provision(cloudsim)["token"])
    d.wait_state("WAIT_CONFIG", last_error=723)
    assert "CONNECTING_CLOUD" not in [e["state"] for e in d.events]


def test_a_network_lost_while_online_is_701_and_waits_a_backoff_before_joining_again(device,
                                                                                     cloudsim):
    d, _ = online_blynk(device, cloudsim, backoff={"base": 0.05, "cap": 0.1})
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    first = d.wait_for(lambda e: "retry_in" in e or e["state"] == "CONNECTING_NET",
                       "a retry or a join")
    assert (first.get("retry_in") is not None, first["last_error"]) == (True, 701)


def test_a_network_check_that_fails_while_online_is_704_and_a_reboot_that_comes_back(device,
                                                                                    cloudsim):
    # the stand-in radio raises on a network of an unknown security (as the
    # firmware's isconnected() may raise a MemoryError on a short heap): the
    # session ends, and as for a MemoryError of the session itself the device
    # shows ERROR 704 and reboots (a reboot mends a short heap), instead of
    # staying online unwatched or retrying on the same heap as a lost network
    d, _ = online_blynk(device, cloudsim, backoff={"base": 0.05, "cap": 0.1})
    d.set_radio([{**n, "sec": "BOGUS"} if n["ssid"] == "home" else n for n in DEFAULT_RADIO])
    first = d.wait_for(lambda e: "retry_in" in e or e["state"] in ("CONNECTING_NET", "ERROR"),
                       "the session ended")
    d.set_radio(DEFAULT_RADIO)
    assert (first["state"], first["last_error"]) == ("ERROR", 704)
    assert d.store()["state"]["last_error"] == 704  # (read back through Store)
    d.wait_state("RUNNING", timeout=40)
    assert d.restarts() == 1


def test_the_backoff_never_waits_longer_than_its_cap(device, cloudsim):
    # base 1 s would allow up to 1, 2, 4 s: the cap of 0.05 s bounds every wait
    d, _ = online_blynk(device, cloudsim, backoff={"base": 1, "cap": 0.05})
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    assert all(0 <= d.wait_note("retry_in")["retry_in"] <= 0.05 for _ in range(3))


def test_a_backoff_cap_over_a_day_waits_at_most_a_day(device, cloudsim):
    # (a board's asyncio cannot sleep 2**29 ms, 6.2 days, in one go)
    d, _ = online_blynk(device, cloudsim, backoff={"base": 1e7, "cap": 1e9})
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    assert 0 <= d.wait_note("retry_in")["retry_in"] <= 86400


# a config field the device cannot use, and its name in the log: each would
# otherwise fail the first state to read it, at every boot or every try (seen:
# ERROR 704 and a reboot for good, or the cloud retried for ever with
# last_error 0, or a portal refusing every proof of possession)
UNUSABLE = [({"portal": "open"}, "portal"),
            ({"portal": {"idle_timeout_s": "ten"}}, "portal.idle_timeout_s"),
            ({"portal": {"idle_timeout_s": 0}}, "portal.idle_timeout_s"),
            ({"portal": {"pop": 1234}}, "portal.pop"),
            ({"wifi_timeout_s": "x"}, "wifi_timeout_s"), ({"wifi_timeout_s": -5}, "wifi_timeout_s"),
            ({"wifi_timeout_s": 0}, "wifi_timeout_s"),
            ({"timeout_s": None}, "timeout_s"), ({"timeout_s": 86401}, "timeout_s"),
            ({"timeout_s": 0}, "timeout_s"),
            ({"keepalive_s": 65536}, "keepalive_s"), ({"keepalive_s": True}, "keepalive_s"),
            ({"keepalive_s": 0}, "keepalive_s"), ({"keepalive_s": 45.5}, "keepalive_s"),
            ({"port": "8883"}, "port"), ({"port": 8883.0}, "port"), ({"port": 0}, "port"),
            ({"host": 5}, "host"), ({"api": 7}, "api"), ({"ca": 5}, "ca"),
            ({"profile": 1}, "profile"), ({"tls": "no"}, "tls"), ({"vendor": 5}, "vendor"),
            ({"name": None}, "name"), ({"fw_ver": 1.0}, "fw_ver"), ({"fw_type": []}, "fw_type"),
            ({"tmpl_id": 7}, "tmpl_id"), ({"rejoin_after": -1}, "rejoin_after"),
            ({"rejoin_after": 2.5}, "rejoin_after"), ({"rejoin_after": "5"}, "rejoin_after"),
            ({"trial_s": -1}, "trial_s"), ({"trial_s": 86401}, "trial_s"),
            ({"trial_s": "50"}, "trial_s"),
            # the device's own certificate comes with its key, and the other way round
            ({"cert": "/device.pem"}, "key"), ({"key": "/device.key"}, "cert"),
            ({"cert": 5, "key": "/device.key"}, "cert"),
            # a backoff of 0 (or less) retries at once, for ever: a login storm
            ({"backoff": 5}, "backoff"), ({"backoff": {"cap": "a week"}}, "backoff.cap"),
            ({"backoff": {"base": 0}}, "backoff.base"), ({"backoff": {"cap": -1}}, "backoff.cap"),
            ({"backoff": {"base": None}}, "backoff.base"),
            ({"backoff": {"stable": -1}}, "backoff.stable"),
            ({"backoff": {"stable": True}}, "backoff.stable")]


@pytest.mark.parametrize("bad,field", UNUSABLE, ids=[f for _, f in UNUSABLE])
def test_a_config_field_the_device_cannot_use_shows_error_700_naming_it(device, bad, field):
    d = device(config=bad)
    assert d.wait_state("ERROR")["last_error"] == 700
    assert f"config: {field} must be" in d.log_path.read_text()


@pytest.mark.parametrize("field,most", [("port", 65535), ("keepalive_s", 65535)])
def test_a_number_that_must_be_whole_is_named_as_such(device, field, most):
    d = device(config={field: 30.5})
    d.wait_state("ERROR")
    assert f"config: {field} must be a whole number from 1 to {most}" in d.log_path.read_text()


def test_numbers_at_either_end_of_their_range_are_taken(mpy):
    ends = [{"wifi_timeout_s": n, "timeout_s": n, "portal": {"idle_timeout_s": n}}
            for n in (1, 86400)] + [{"keepalive_s": n, "port": n} for n in (1, 65535)] + [
            {"rejoin_after": n} for n in (0, 65535)] + [{"trial_s": n} for n in (0, 86400)] + [
            {"backoff": {"base": 0.001, "cap": 0.001, "stable": 0}}, {"backoff": {}}]
    out = mpy.run("from onboard.boot import unusable\n"
                  f"print([unusable(c) for c in {ends!r}])").lines
    assert out == ["[" + ", ".join(["None"] * len(ends)) + "]"]


def test_a_time_section_that_is_not_an_object_is_refused_naming_it(mpy):
    # (the simulated device's host side refuses it before the device starts)
    out = mpy.run("from onboard.boot import unusable\n"
                  "print(unusable({'time': 'pool.ntp.org'}), unusable({'time': {}}))").lines
    assert out == ["('time', 'an object') None"]


def test_a_null_ca_pop_or_time_is_taken_as_none_given(mpy):
    # as where they are read: no CA (plain MQTT), no proof of possession, the default clock
    out = mpy.run("from onboard.boot import unusable\n"
                  "print(unusable({'ca': None, 'portal': {'pop': None}, 'time': None}))\n"
                  "print(unusable({'host': None}), unusable({'vendor': None}))").lines
    assert out == ["None", "('host', 'text') ('vendor', 'text')"]


@pytest.mark.parametrize("password", ["short", "x" * 65, "caf\u00e9-caf\u00e9", 12345678,
                                      "0123456789abcdef" * 4])
def test_an_access_point_password_an_esp32_would_refuse_shows_error_700_naming_it(device,
                                                                                 password):
    # (on an ESP32, setup mode's access point would raise at every boot: ERROR
    # 704 and a reboot, for ever, the device never reachable to configure; a
    # 64-hex-digit key MicroPython's WLAN.config cuts to a 63-character
    # passphrase, v1.25 ports/esp32/network_wlan.c: an access point no phone
    # given the key can join)
    d = device(config={"portal": {"ap_password": password}})
    assert d.wait_state("ERROR")["last_error"] == 700
    log = d.log_path.read_text()
    assert "portal.ap_password" in log
    assert str(password) not in log


@pytest.mark.parametrize("password", ["", "8 chars!", "x" * 63])
def test_an_access_point_password_an_esp32_takes_opens_setup_mode(device, password):
    assert device(config={"portal": {"ap_password": password}}).wait_state("WAIT_CONFIG")


def test_the_unix_access_point_refuses_a_wpa2_password_under_8_characters(mpy):
    # as MicroPython v1.25 on the emulated ESP32: OSError "Wifi Invalid Password"
    out = mpy.run("""
import network
ap = network.WLAN(network.AP_IF)
ap.config(essid="before", authmode=network.AUTH_OPEN)
for pw in ("1234567", "12345678"):
    try:
        ap.config(essid=pw, password=pw, authmode=network.AUTH_WPA2_PSK)
        print("ok")
    except OSError as e:
        print(e)
    print(ap.config("essid"))
ap.config(essid="a", password="", authmode=network.AUTH_OPEN)
print("open ok")
""").lines
    assert out == ["Wifi Invalid Password", "before", "ok", "12345678", "open ok"]


def test_portal_answers_and_button_is_seen_while_the_cloud_stalls_8s(device, cloudsim):
    prov = provision(cloudsim)
    stall = cloudsim.faults.add({"path": "/blynk/external/api/provision", "kind": "latency",
                                 "seconds": 8})
    d = device(config=blynk_config(cloudsim))
    configure(d, blynk=prov["token"])
    d.wait_state("CONNECTING_CLOUD")  # the activation is in flight, stalled
    d.press(2000)
    event = d.wait_state("WAIT_CONFIG")
    status, _, _ = get(port_of(event), "/board_info.json")
    assert status == 200
    assert not stall.get("finished"), "the portal answered only after the stall ended"


def pressed_while_waiting_out_a_retry_after(device, cloudsim, **config):
    """A Blynk device whose activation answered 429 with Retry-After an hour,
    its button pressed while it waits between two tries (no session under
    way): the device, once setup mode has opened."""
    prov = provision(cloudsim)
    cloudsim.faults.add({"path": "/blynk/external/api/provision", "count": -1,
                         "kind": "retry_after", "seconds": 3600})
    try:
        d = device(config={**blynk_config(cloudsim), **config})
        configure(d, blynk=prov["token"])
        assert d.wait_note("retry_in")["retry_in"] >= 3600
    finally:
        cloudsim.faults.clear()  # (the device asks no more before its wait ends)
    d.press(2000)
    d.portal = port_of(d.wait_state("WAIT_CONFIG"))
    return d


def test_button_opens_setup_while_the_device_waits_out_a_retry_after(device, cloudsim):
    # then, not an hour later (nor after the backoff's own wait)
    d = pressed_while_waiting_out_a_retry_after(device, cloudsim)
    status, _, _ = get(d.portal, "/board_info.json")
    assert status == 200


def test_setup_mode_opened_right_after_the_radio_restarted_lists_the_networks(device, cloudsim):
    # (rejoin_after 1: the radio is turned off and on after that failed try,
    # before setup mode: its station is on again, or its scan would find nothing)
    d = pressed_while_waiting_out_a_retry_after(device, cloudsim, rejoin_after=1)
    status, _, body = get(d.portal, "/wifi_scan.json")
    assert status == 200
    assert "home" in [n["ssid"] for n in json.loads(body)]


def test_a_config_naming_no_known_profile_shows_error_700(device):
    d = device(config={"profile": "no-such-cloud"})
    event = d.wait_state("ERROR")
    assert event["last_error"] == 700


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_button_opens_setup_while_a_silent_broker_holds_the_mqtt_connect(device, cloudsim, tls):
    # a broker that accepts TCP and never says a word (no CONNACK, no TLS handshake)
    silent = socket.create_server(("127.0.0.1", 0))
    silent.settimeout(30)
    try:
        prov = provision(cloudsim)
        d = device(config={**blynk_config(cloudsim), "port": silent.getsockname()[1],
                           "tls": tls, "timeout_s": 120})
        configure(d, blynk=prov["token"])
        conn, _ = silent.accept()  # the device is inside its MQTT connect now
        d.press(2000)
        event = d.wait_state("WAIT_CONFIG")
        status, _, _ = get(port_of(event), "/board_info.json")
        assert status == 200
        assert not [e for e in d.events if "retry_in" in e], "the connect gave up first"
        conn.close()
    finally:
        silent.close()


# The LED, as the board's pin file shows it (its timing is not asserted) -----------------------

def test_the_led_blinks_in_setup_mode(device):
    d = device()
    d.wait_state("WAIT_CONFIG")
    calls, _ = d.led()
    assert d.led_after(calls, 6) in ("101010", "010101")


def test_the_led_stays_on_while_online(device, cloudsim):
    d, _ = online_blynk(device, cloudsim)
    calls, _ = d.led()
    assert d.led_after(calls, 3) == "111"


def test_the_led_blinks_while_the_device_joins_its_network(device, cloudsim):
    # a network without DHCP: the join waits for an address until it times out
    d = device(config=blynk_config(cloudsim),
               radio=[{**n, "behaviour": "no_ip"} for n in DEFAULT_RADIO])
    configure(d, blynk=provision(cloudsim)["token"])
    d.wait_state("CONNECTING_NET")
    calls, _ = d.led()
    assert d.led_after(calls, 4) in ("1010", "0101")


def test_the_led_blinks_while_the_config_is_unusable(device):
    d = device(config={"profile": "no-such-cloud"})
    d.wait_state("ERROR")
    calls, _ = d.led()
    assert d.led_after(calls, 4) in ("1010", "0101")


def seed_flash(mpy, tmp_path, **sections):
    """The first device's flash (see device()) holding these store sections."""
    flash = tmp_path / "device0" / "flash"
    flash.mkdir(parents=True)
    puts = "\n".join(f"s.put({name!r}, **{fields!r})" for name, fields in sections.items())
    mpy.run(f"from onboard.store import Store\ns = Store({str(flash / 'onboard.json')!r})\n"
            + puts)


def test_a_reset_during_a_trial_lets_go_of_the_trials_code(device, mpy, tmp_path):
    # new settings on trial keep failing (this config reaches no cloud: a failure
    # that may pass, tried again for trial_s); the 10 s hold resets the device,
    # and setup mode holds none of the trial's code
    seed_flash(mpy, tmp_path, wifi={"networks": [{"ssid": "home", "password": "correct horse"}]},
               cloud={"token": "O" * 32},
               state={"pending": {"ssid": "cafe", "password": "", "ip": None,
                                  "cloud": {"token": "N" * 32}}})
    d = device(config={"trial_s": 600, "backoff": {"base": 600, "cap": 600},
                       "report_heap": True})
    # the hold ends a wait between two tries (not a join, whose own end lets
    # go of the trial's code): one of 30 s or more, the 10.5 s within it
    wait = d.wait_for(lambda e: e.get("retry_in", 0) >= 30, "a wait of 30 s or more", 90)
    assert "trial" in wait["loaded"]  # (on trial: its code is held)
    d.press(10500)
    d.wait_state("RESET_CONFIG", timeout=20)
    assert "trial" not in d.wait_state("WAIT_CONFIG")["loaded"]


RESET = """
import json
import powercut
from onboard.runtime import Runtime

class Device:  # what Runtime.reset uses of the runtime (a profile that says no bye)
    def __init__(self, store):
        self.real = self.store = store
        self.profile = None
    def set_error(self, code):
        Runtime.set_error(self, code)

def prepare(s):
    s.put("wifi", networks=[{"ssid": "home", "password": "correct horse"}])
    s.put("cloud", token="O" * 32)
    s.put("state", last_error=702, pending={"ssid": "cafe", "password": "", "ip": None,
                                            "cloud": {"token": "N" * 32}})

powercut.sweep(KIND, prepare, lambda s: Runtime.reset(Device(s)))
"""


@pytest.mark.parametrize("kind", ["lfs", "fat"])
def test_a_power_cut_at_every_write_of_a_reset_during_a_trial_leaves_all_or_nothing(mpy, kind):
    # all: the device as it was, on trial; nothing: no network, no token and
    # no settings on trial that the next boot would try after the reset
    lines = [json.loads(line) for line in mpy.run(RESET.replace("KIND", repr(kind))).lines
             if line.startswith("{")]
    points, summary = lines[:-1], lines[-1]
    assert summary["old"], "the reset must change the record"
    got = [p["got"] for p in points]
    assert set(got) == {"old", "new"} and got[-1] == "new", points


def test_after_a_reset_during_a_trial_setup_mode_does_not_go_back_to_the_trial(device, mpy,
                                                                                tmp_path):
    # the reset leaves nothing to go back to, the settings on trial included:
    # setup mode's idle time passes and a short press comes (held past that
    # time), and the portal still takes the app's settings
    seed_flash(mpy, tmp_path, wifi={"networks": [{"ssid": "home", "password": "correct horse"}]},
               cloud={"token": "O" * 32},
               state={"pending": {"ssid": "cafe", "password": "", "ip": None,
                                  "cloud": {"token": "N" * 32}}})
    d = device(config={"trial_s": 600, "backoff": {"base": 0.2, "cap": 0.5},
                       "portal": {"idle_timeout_s": 1}})
    d.wait_note("retry_in")  # (on trial)
    d.press(10500)
    d.wait_state("RESET_CONFIG", timeout=20)
    waiting = d.wait_state("WAIT_CONFIG")
    d.release_seen()
    d.press(2500)
    d.release_seen()
    configure(d, waiting, blynk="B" * 32)
    d.wait_state("CONFIGURING")
    assert states_from(d, "RESET_CONFIG") == ["RESET_CONFIG", "WAIT_CONFIG", "CONFIGURING"]


def test_a_stored_state_the_runtime_cannot_read_is_error_704(device, mpy, tmp_path):
    seed_flash(mpy, tmp_path, wifi={"networks": [{"ssid": "home", "password": "correct horse"}]},
               state={"pending": "not a record"})
    d = device()
    assert d.wait_state("ERROR")["last_error"] == 704  # the device's first ERROR
    assert d.store()["state"]["last_error"] == 704  # and the flash read back through Store


def test_reset_through_the_portal_clears_last_error(device, mpy, tmp_path):
    seed_flash(mpy, tmp_path, cloud={"token": "t" * 32}, state={"last_error": 703})
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG", last_error=703))
    assert get(port, "/reset")[0] == 200
    assert json.loads(get(port, "/board_info.json")[2])["last_error"] == 0
    assert d.store().get("state", {}).get("last_error", 0) == 0  # (none stored reads 0)


def test_after_new_settings_failed_the_working_wifi_when_down_is_retried_not_set_up_again(
        device, cloudsim):
    from test_blynk_app import reconfigure

    d, prov = online_blynk(device, cloudsim, portal={"idle_timeout_s": 2},
                           backoff={"base": 0.05, "cap": 0.1})
    reconfigure(d, ssid="home", **{"pass": "wrong horse!"}, blynk=prov["token"])
    d.wait_state("WAIT_CONFIG", last_error=722)
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])
    # idle timeout: back to the working settings, whose network is gone for now
    after = d.wait_for(lambda e: "retry_in" in e or e["state"] == "WAIT_CONFIG",
                       "a retry or setup mode again")
    assert "retry_in" in after, after


def test_last_error_is_written_to_the_store(device, cloudsim):
    d = device(config=blynk_config(cloudsim))
    configure(d, blynk="Zz" * 16)  # well formed, and no device has it: refused, 703
    d.wait_state("WAIT_CONFIG", last_error=703)
    assert d.store()["state"]["last_error"] == 703  # the flash read back through Store


def test_a_trial_cut_short_by_a_power_cut_is_tried_again_at_boot(device, mpy, tmp_path):
    # new settings were on trial; this config reaches no cloud, so the trial
    # fails (at its first failure: trial_s 0)
    seed_flash(mpy, tmp_path, wifi={"networks": [{"ssid": "home", "password": "correct horse"}]},
               cloud={"token": "O" * 32},
               state={"pending": {"ssid": "cafe", "password": "", "ip": None,
                                  "cloud": {"token": "N" * 32}}})
    d = device(config={"trial_s": 0})
    failed = d.wait_for(lambda e: "retry_in" in e or e["state"] == "WAIT_CONFIG",
                        "the trial's end or a retry")
    assert (failed["state"], failed["last_error"], "retry_in" in failed) == (
        "WAIT_CONFIG", 702, False)
    assert "joined cafe" in d.log_path.read_text()


TRIAL_WRITES = """
import json
from onboard.store import Store
from onboard.trial import Trial, end

P = "onboard.json"
s = Store(P)
s.put("cloud", cis="old-hub", uid="u-old", refresh_token="R-old")
s.put("state", pending={"ssid": "cafe", "password": "", "ip": None, "cloud": {"cis": "new-hub"}})

class Runtime:  # what trial.end uses of the runtime
    real = s
    store = Trial(s)

rt = Runtime()
rt.store.put("cloud", uid="u-new", refresh_token="R-new")  # the session's, as plgd's sign-up
rt.store.put({"cloud": {"access_token": "A-new"}, "enrol": {"code": "x"}})
print(json.dumps(rt.store.get("cloud")))
end(rt, 701)
print(json.dumps(Store(P).load()["cloud"]))
"""


def test_what_the_cloud_session_stores_during_a_trial_that_fails_leaves_the_working_cloud(mpy):
    # (plgd signs up at the new hub on trial: its tokens must not reach the
    # working settings, or the device goes back to its hub with the new one's)
    during, after = (json.loads(line) for line in mpy.run(TRIAL_WRITES).lines
                     if line.startswith("{"))
    assert during == {"cis": "new-hub", "uid": "u-new", "refresh_token": "R-new",
                      "access_token": "A-new"}
    assert after == {"cis": "old-hub", "uid": "u-old", "refresh_token": "R-old"}


def test_what_the_cloud_session_stores_during_a_trial_is_kept_when_the_new_settings_work(
        device, cloudsim):
    from test_blynk_app import reconfigure

    d, _ = online_blynk(device, cloudsim)
    new = provision(cloudsim)["token"]
    reconfigure(d, ssid="cafe", **{"pass": ""}, blynk=new)  # on trial: activated on the way
    d.wait_state("RUNNING")
    cloud = d.store()["cloud"]
    assert (cloud["token"], cloud.get("activated")) == (new, True)
