"""onboard.wifi on the Unix port: the credential and address checks, the saved
networks (read back through Store), scans, and joins against the simulated
radio (boards/unix/network.py: behaviours ok, no_ip, slow)."""

import json

import pytest

HOME = {"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -50, "sec": "WPA2", "ch": 6,
        "password": "correct horse", "behaviour": "ok"}


def run(mpy, tmp_path, body, networks=()):
    """Run `body` with onboard.wifi, a Store on a file and the radio holding
    `networks`; its printed lines."""
    radio = tmp_path / "radio.json"
    radio.write_text(json.dumps({"networks": list(networks)}))
    return mpy.run(f"""
import os, asyncio, json
os.putenv("ONBOARD_RADIO", {str(radio)!r})
import network
from onboard import wifi
from onboard.store import Store
store = Store({str(tmp_path / "onboard.json")!r})
sta = network.WLAN(network.STA_IF)
{body}
""").lines


def refusal(mpy, call):
    """The ValueError message `call` (wifi.check_... code) raises, or 'ok'."""
    return mpy.run(f"""
from onboard import wifi
try:
    print("ok", {call})
except ValueError as e:
    print(e)
""").lines[0]


# check_credentials -------------------------------------------------------------------------

@pytest.mark.parametrize("ssid", ["h", "x" * 32, "\u00e9" * 16])
def test_ssid_of_1_to_32_bytes_is_accepted(mpy, ssid):
    assert refusal(mpy, f"wifi.check_credentials({ssid!r}, '')") == "ok None"


@pytest.mark.parametrize("ssid", ["", "x" * 33, "\u00e9" * 17, "None", "b'home'"])
def test_ssid_that_is_empty_over_32_bytes_or_not_text_is_refused_naming_ssid(mpy, ssid):
    arg = ssid if ssid in ("None", "b'home'") else repr(ssid)
    assert refusal(mpy, f"wifi.check_credentials({arg}, '')") == "ssid: must be 1-32 bytes of text"


@pytest.mark.parametrize("password", ["", "8 chars!", "x" * 63, " ~" * 4, "0123456789abcdef" * 4,
                                      "0123456789ABCDEF" * 4])
def test_open_printable_8_to_63_and_64_hex_passwords_are_accepted(mpy, password):
    assert refusal(mpy, f"wifi.check_credentials('home', {password!r})") == "ok None"


def test_password_that_is_not_text_is_refused_naming_password(mpy):
    assert refusal(mpy, "wifi.check_credentials('home', None)") == "password: must be text"


@pytest.mark.parametrize("password", ["x" * 7, "x" * 65, "x" * 4, "x" * 6, "x"])
def test_password_of_a_wrong_length_is_refused_naming_password(mpy, password):
    assert refusal(mpy, f"wifi.check_credentials('home', {password!r})").startswith(
        "password: must be 8-63 characters")


@pytest.mark.parametrize("password", ["0123456789abcdef" * 3 + "0123456789abcdeg",
                                      "g123456789abcdef" * 4])
def test_64_characters_that_are_not_all_hex_are_refused(mpy, password):
    assert refusal(mpy, f"wifi.check_credentials('home', {password!r})") == \
        "password: 64 characters must all be hex digits"


@pytest.mark.parametrize("password", ["tab\there!", "caf\u00e9-au-lait", "del\x7fchar",
                                      "\x1fcontrol"])
def test_password_with_a_character_outside_printable_ascii_is_refused(mpy, password):
    assert refusal(mpy, f"wifi.check_credentials('home', {password!r})") == \
        "password: must be printable ASCII"


# check_ip ------------------------------------------------------------------------------------

STATIC = {"ip": "192.168.1.20", "mask": "255.255.255.0", "gw": "192.168.1.1"}


@pytest.mark.parametrize("fields", [{}, {"ip": ""}, {"mask": "255.255.255.0"}])
def test_no_ip_field_means_dhcp(mpy, fields):
    assert refusal(mpy, f"wifi.check_ip({fields!r})") == "ok None"


def test_dns_defaults_to_the_gateway_and_dns2_to_dns(mpy):
    assert refusal(mpy, f"wifi.check_ip({STATIC!r})") == (
        "ok ['192.168.1.20', '255.255.255.0', '192.168.1.1', '192.168.1.1', '192.168.1.1']")
    assert refusal(mpy, f"wifi.check_ip({dict(STATIC, dns='9.9.9.9')!r})").endswith(
        "'9.9.9.9', '9.9.9.9']")


def test_every_given_field_is_kept_in_order(mpy):
    fields = dict(STATIC, dns="10.0.0.53", dns2="255.255.255.255")
    assert refusal(mpy, f"wifi.check_ip({fields!r})") == (
        "ok ['192.168.1.20', '255.255.255.0', '192.168.1.1', '10.0.0.53', '255.255.255.255']")


@pytest.mark.parametrize("field,value", [("ip", "256.1.1.1"), ("mask", "255.255.255"),
                                         ("gw", "1.2.3.4.5"), ("dns", "1.2.3.x"),
                                         ("dns2", "0255.1.1.1"), ("ip", "1..2.3"),
                                         ("gw", "")])
def test_malformed_address_is_refused_naming_its_field(mpy, field, value):
    fields = dict(STATIC, **{field: value})
    if field == "gw" and not value:
        del fields["gw"]  # gw is needed with ip
    assert refusal(mpy, f"wifi.check_ip({fields!r})") == \
        f"{field}: must be an IPv4 address like 192.168.1.20"


# saved networks, read back through Store ------------------------------------------------------

def test_remember_puts_the_network_first_and_drops_its_older_entry(mpy, tmp_path):
    out = run(mpy, tmp_path, """
wifi.remember(store, "home", "password-1")
wifi.remember(store, "cafe", "")
wifi.remember(store, "home", "password-2", ["10.0.0.2", "255.0.0.0", "10.0.0.1", "10.0.0.1",
                                             "10.0.0.1"])
print(json.dumps(Store(store.path).get("wifi")))
""")
    assert json.loads(out[0]) == {"networks": [
        {"ssid": "home", "password": "password-2",
         "ip": ["10.0.0.2", "255.0.0.0", "10.0.0.1", "10.0.0.1", "10.0.0.1"]},
        {"ssid": "cafe", "password": ""}]}


def test_at_most_8_networks_are_kept_the_oldest_goes(mpy, tmp_path):
    out = run(mpy, tmp_path, """
for i in range(9):
    wifi.remember(store, "net%d" % i, "")
print(json.dumps([n["ssid"] for n in Store(store.path).get("wifi")["networks"]]))
""")
    assert json.loads(out[0]) == ["net%d" % i for i in range(8, 0, -1)]


def test_settings_that_worked_on_trial_keep_at_most_8_networks_the_oldest_goes(mpy, tmp_path):
    # onboard.trial's switch writes the list itself (the Wi-Fi manager is not
    # loaded while online): the same cap as remember's
    out = run(mpy, tmp_path, """
from onboard import trial
for i in range(8):
    wifi.remember(store, "net%d" % i, "")
store.put("state", pending={"ssid": "net8", "password": "", "cloud": {}})
trial.switch(store)
print(json.dumps([n["ssid"] for n in Store(store.path).get("wifi")["networks"]]))
""")
    assert json.loads(out[0]) == ["net%d" % i for i in range(8, 0, -1)]


def test_remembering_the_first_network_again_writes_nothing(mpy, tmp_path):
    out = run(mpy, tmp_path, """
wifi.remember(store, "cafe", "")
wifi.remember(store, "home", "password-1")
before = store.writes
wifi.remember(store, "home", "password-1")
print(store.writes - before)
""")
    assert out == ["0"]


def test_remembering_bad_credentials_is_refused_and_stores_nothing(mpy, tmp_path):
    out = run(mpy, tmp_path, """
wifi.remember(store, "home", "password-1")
try:
    wifi.remember(store, "cafe", "shortpw")
except ValueError as e:
    print(e)
print(json.dumps(Store(store.path).get("wifi")))
""")
    assert out[0].startswith("password: ")
    assert json.loads(out[1]) == {"networks": [{"ssid": "home", "password": "password-1"}]}


# reason and scan -----------------------------------------------------------------------------

@pytest.mark.parametrize("status,code", [(201, 720), (210, 720), (211, 720), (212, 720),
                                         (15, 722), (202, 722), (204, 722), (1001, 723),
                                         (200, 701),
                                         (203, 701), (1000, 723), (8, 701)])
def test_station_status_maps_to_its_last_error(mpy, status, code):
    assert refusal(mpy, f"wifi.reason({status})") == f"ok {code}"


FAKE_STATION = """
class Sta:
    def scan(self):
        return [(b"weak", b"\\x01\\x02\\x03\\x04\\x05\\x06", 1, -80, 3, False),
                (b"strong", b"\\xaa\\xbb\\xcc\\x00\\x00\\x0f", 6, -40, 0, False),
                (b"\\xff\\xfe", b"\\x00" * 6, 1, -30, 3, False),
                (b"weak", b"\\x01\\x02\\x03\\x04\\x05\\x07", 11, -70, 4, False),
                (b"hidden", b"\\x00" * 6, 1, -30, 3, True),
                (b"", b"\\x00" * 6, 1, -30, 3, False),
                (b"odd-auth", b"\\x00" * 6, 1, -90, 9, False),
                (b"eap", b"\\x00" * 6, 1, -95, 5, False)]
"""


def test_scan_lists_each_named_visible_network_once_strongest_first(mpy, tmp_path):
    out = run(mpy, tmp_path, FAKE_STATION + "print(json.dumps(wifi.scan(Sta())))")
    assert json.loads(out[0]) == [
        {"ssid": "strong", "rssi": -40, "ch": 6, "bssid": "aa:bb:cc:00:00:0f", "sec": "OPEN"},
        {"ssid": "weak", "rssi": -70, "ch": 11, "bssid": "01:02:03:04:05:07", "sec": "WPA+WPA2"},
        {"ssid": "odd-auth", "rssi": -90, "ch": 1, "bssid": "00:00:00:00:00:00",
         "sec": "unknown"},
        {"ssid": "eap", "rssi": -95, "ch": 1, "bssid": "00:00:00:00:00:00", "sec": "WPA2-EAP"}]


def test_scan_gives_at_most_15_networks_by_default(mpy, tmp_path):
    nets = [dict(HOME, ssid="net%02d" % i, rssi=-40 - i) for i in range(17)]
    out = run(mpy, tmp_path, """
sta.active(True)
print(json.dumps([n["ssid"] for n in wifi.scan(sta)]))
print(len(wifi.scan(sta, 3)))
""", nets)
    assert json.loads(out[0]) == ["net%02d" % i for i in range(15)]
    assert out[1] == "3"


def test_the_unix_radio_scans_nothing_while_a_join_tries_and_again_once_its_tries_are_spent(
        mpy, tmp_path):
    # as MicroPython v1.25 on the emulated ESP32: an empty list at once while
    # the station tries, the networks again after config(reconnects=1)'s two
    # tries of a network not in the air
    out = run(mpy, tmp_path, """
import time
sta.active(True)
sta.config(reconnects=1)
sta.connect("missing", "")
print(len(sta.scan()))
start = time.ticks_ms()
while not sta.scan() and time.ticks_diff(time.ticks_ms(), start) < 10000:
    time.sleep_ms(20)
print(len(sta.scan()), sta.status())
""", [HOME])
    assert out == ["0", "1 201"]


def test_mac_text_is_lower_case_hex_with_the_separator_given(mpy):
    assert refusal(mpy, "wifi.mac_text(b'\\xaa\\x0b\\x00', '')") == "ok aa0b00"
    assert refusal(mpy, "wifi.mac_text(b'\\xaa\\x0b\\x00')") == "ok aa:0b:00"


# join, against the simulated radio -------------------------------------------------------------

def join(mpy, tmp_path, networks, ssid, password, timeout_ms=None, ip=None):
    """(the code join returns, the station's status and address after it)."""
    timeout = "" if timeout_ms is None else f", timeout_ms={timeout_ms}"
    out = run(mpy, tmp_path, f"""
code = asyncio.run(wifi.join(sta, {ssid!r}, {password!r}{timeout}, ip={ip!r}))
print(code, sta.status(), sta.ifconfig()[0])
""", networks)
    code, status, address = out[0].split()
    return int(code), int(status), address


def test_join_with_the_right_password_gets_an_address(mpy, tmp_path):
    assert join(mpy, tmp_path, [HOME], "home", "correct horse") == (0, 1010, "127.0.0.1")


def test_join_with_a_wrong_password_is_722_and_leaves_the_station_with_that_reason(mpy,
                                                                                    tmp_path):
    # ESP-IDF 5 ends each try with reason 15 (the 4-way handshake's timeout); the
    # station's default, retrying for ever, would show "connecting" (723 at the timeout)
    assert join(mpy, tmp_path, [HOME], "home", "wrong horse") == (722, 15, "0.0.0.0")


def test_join_of_a_network_not_in_the_air_is_720(mpy, tmp_path):
    assert join(mpy, tmp_path, [HOME], "elsewhere", "correct horse")[0] == 720


def test_a_join_after_one_that_failed_is_not_ended_by_the_reason_that_one_left(mpy, tmp_path):
    # an ESP32 station's status() keeps the last try's reason (201: not found)
    # through disconnect() and connect(), until an address comes
    out = run(mpy, tmp_path, """
print(asyncio.run(wifi.join(sta, "elsewhere", "correct horse")), sta.status())
print(asyncio.run(wifi.join(sta, "home", "correct horse")))
""", [HOME])
    assert out == ["720 201", "0"]


def test_a_second_wrong_password_in_a_row_ends_with_its_own_tries_not_its_timeout(mpy, tmp_path):
    # the first join leaves the station with reason 15; the second one's tries
    # read "connecting" first, so the 15 they end with is this join's news:
    # 722 once they are spent, not a wait for its ten minutes
    out = run(mpy, tmp_path, """
print(asyncio.run(wifi.join(sta, "home", "wrong horse")), sta.status())
print(asyncio.run(wifi.join(sta, "home", "wrong horse", timeout_ms=600000)))
""", [HOME])
    assert out == ["722 15", "722"]


def test_a_weak_network_whose_first_try_times_out_is_joined_by_the_second(mpy, tmp_path):
    # join asks the radio for one retry: a handshake lost once on a weak link
    # does not end the join as a wrong password
    weak = dict(HOME, behaviour="weak")
    assert join(mpy, tmp_path, [weak], "home", "correct horse") == (0, 1010, "127.0.0.1")


def test_a_join_while_joined_to_another_network_ends_as_the_new_one_does(mpy, tmp_path):
    # the station reads joined until ESP-IDF has handled leaving the first
    # network: that address is not the new network's
    office = dict(HOME, ssid="office", bssid="aa:bb:cc:00:00:02", password="office key")
    out = run(mpy, tmp_path, """
print(asyncio.run(wifi.join(sta, "home", "correct horse")))
print(asyncio.run(wifi.join(sta, "office", "wrong key")), sta.isconnected())
""", [HOME, office])
    assert out == ["0", "722 False"]


def test_join_where_dhcp_never_answers_is_723_once_the_timeout_ends(mpy, tmp_path):
    basement = dict(HOME, ssid="basement", behaviour="no_ip")
    assert join(mpy, tmp_path, [basement], "basement", "correct horse", timeout_ms=1000) == (
        723, 1000, "0.0.0.0")


def test_join_of_a_slow_network_waits_for_its_address(mpy, tmp_path):
    attic = dict(HOME, ssid="attic", behaviour="slow")  # the radio takes 3 s to associate
    assert join(mpy, tmp_path, [attic], "attic", "correct horse")[0] == 0


def test_join_of_a_slow_network_is_723_when_the_timeout_ends_first(mpy, tmp_path):
    attic = dict(HOME, ssid="attic", behaviour="slow")
    assert join(mpy, tmp_path, [attic], "attic", "correct horse", timeout_ms=500)[0] == 723


def test_join_applies_ip_mask_gateway_and_dns_of_a_static_address(mpy, tmp_path):
    out = run(mpy, tmp_path, """
asyncio.run(wifi.join(sta, "home", "correct horse",
                      ip=["10.1.2.3", "255.255.0.0", "10.1.0.1", "10.1.0.2", "10.1.0.3"]))
print(sta.ifconfig())
asyncio.run(wifi.join(sta, "home", "correct horse"))
print(sta.ifconfig()[0])
""", [HOME])
    assert out == ["('10.1.2.3', '255.255.0.0', '10.1.0.1', '10.1.0.2')", "127.0.0.1"]



def test_the_stand_in_radio_takes_a_static_address_only_as_four_dotted_addresses(mpy, tmp_path):
    # as the ESP32's ifconfig: anything else is refused
    out = run(mpy, tmp_path, """
sta.active(True)
for bad in (("10.1.2.3", "255.255.0.0", "10.1.0.1"), ("10.1.2.3", "255.255.0.0", "10.1.0.1", 7),
            ("10.1.2.3", "255.255.0", "10.1.0.1", "10.1.0.2")):
    try:
        sta.ifconfig(bad)
        print("taken", bad)
    except ValueError:
        print("refused")
sta.ifconfig(("10.1.2.3", "255.255.0.0", "10.1.0.1", "10.1.0.2"))
print("taken")
""", [HOME])
    assert out == ["refused", "refused", "refused", "taken"]

# a station whose status() answers from a list (its last status from then on),
# counting the joins asked of it
LISTED_STATION = """
class Sta:
    joins = 0
    def __init__(self, statuses):
        self.statuses = statuses
    def active(self, on=None):
        return True
    def config(self, **kw):
        pass
    def isconnected(self):
        return False
    def disconnect(self):
        pass
    def ifconfig(self, config=None):
        pass
    def connect(self, ssid, password):
        Sta.joins += 1
    def status(self):
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
"""


def test_join_waits_while_the_station_is_still_idle_after_connect(mpy, tmp_path):
    # an ESP32 station reads idle after connect() while ESP-IDF's event of the
    # join it left (disconnect()) lands late: idle (1000) once the status has
    # moved off the stale reason (201) is no failure of this join
    out = run(mpy, tmp_path, LISTED_STATION + """
print(asyncio.run(wifi.join(Sta([201, 1000, 1000, 1001, 1010]), "home", "correct horse")))
""")
    assert out == ["0"]


def test_join_lets_other_tasks_run_while_it_waits(mpy, tmp_path):
    out = run(mpy, tmp_path, """
ticks = [0]
async def ticker():
    while True:
        ticks[0] += 1
        await asyncio.sleep_ms(0)
async def main():
    t = asyncio.create_task(ticker())
    code = await wifi.join(sta, "home", "correct horse")
    print(code, ticks[0] > 0)
    t.cancel()
asyncio.run(main())
""", [HOME])
    assert out == ["0 True"]


def test_join_turns_the_station_on(mpy, tmp_path):
    out = run(mpy, tmp_path, """
sta.active(False)
print(asyncio.run(wifi.join(sta, "home", "correct horse")), sta.active())
""", [HOME])
    assert out == ["0 True"]


# join_saved ----------------------------------------------------------------------------------

def test_join_saved_with_nothing_saved_is_700(mpy, tmp_path):
    assert run(mpy, tmp_path, "print(asyncio.run(wifi.join_saved(store, sta)))", [HOME]) == [
        "(700, None)"]


def test_join_saved_moves_the_network_that_joined_to_the_front(mpy, tmp_path):
    out = run(mpy, tmp_path, """
wifi.remember(store, "home", "correct horse")
wifi.remember(store, "gone", "password-0")
print(asyncio.run(wifi.join_saved(store, sta)))
print(json.dumps([n["ssid"] for n in Store(store.path).get("wifi")["networks"]]))
""", [HOME])
    assert out == ["(0, 'home')", '["home", "gone"]']


def test_join_saved_keeps_a_static_address_of_the_network_that_joined(mpy, tmp_path):
    out = run(mpy, tmp_path, """
ip = ["10.1.2.3", "255.255.0.0", "10.1.0.1", "10.1.0.2", "10.1.0.3"]
wifi.remember(store, "home", "correct horse", ip)
wifi.remember(store, "gone", "password-0")
print(asyncio.run(wifi.join_saved(store, sta)), sta.ifconfig()[0])
print(json.dumps(Store(store.path).get("wifi")["networks"][0]))
""", [HOME])
    assert out[0] == "(0, 'home') 10.1.2.3"
    assert json.loads(out[1]) == {"ssid": "home", "password": "correct horse",
                                  "ip": ["10.1.2.3", "255.255.0.0", "10.1.0.1", "10.1.0.2",
                                         "10.1.0.3"]}


def test_join_saved_ended_by_a_press_tries_no_other_network(mpy, tmp_path):
    out = run(mpy, tmp_path, LISTED_STATION + """
class Runtime:  # the button was pressed
    setup_requested = True
wifi.remember(store, "home", "correct horse")
wifi.remember(store, "cafe", "")
print(asyncio.run(wifi.join_saved(store, Sta([1001]), 60000, Runtime())), Sta.joins)
""")
    assert out == ["(723, None) 1"]


def test_join_saved_when_none_joins_is_the_last_failure_and_changes_nothing(mpy, tmp_path):
    out = run(mpy, tmp_path, """
wifi.remember(store, "home", "wrong horse")
wifi.remember(store, "gone", "password-0")
before = store.writes
print(asyncio.run(wifi.join_saved(store, sta, 1000)), store.writes - before)
""", [HOME])
    assert out == ["(722, None) 0"]  # "gone" is tried first (720), then "home" (722)
