# The station's scan as the portal shows it: one entry per SSID (its
# strongest), strongest first, at most 15. Checked three ways, each able to
# fail on any board: the radio's own scan has the documented shape; the
# portal list made from that very scan keeps exactly the strongest entry of
# each visible SSID; a fixed scan gives an exact list. On the Unix port a
# radio file is made first; on a board the real radio answers.
import json
import os
import sys

from tinytest import station, summary, test

from onboard import wifi

if sys.platform == "linux":
    with open("radio_test.json", "w") as f:
        json.dump({"networks": [
            {"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -70, "sec": "WPA2", "ch": 1},
            {"ssid": "home", "bssid": "aa:bb:cc:00:00:02", "rssi": -40, "sec": "WPA2", "ch": 6},
            {"ssid": "cafe", "bssid": "aa:bb:cc:00:00:03", "rssi": -60, "sec": "OPEN",
             "ch": 11}]}, f)
    os.putenv("ONBOARD_RADIO", "radio_test.json")

sta = station()
raw = sta.scan()  # one scan, shared below so the checks compare like with like


class Replay:
    """A station whose scan() answers a given list: wifi.scan on known input."""

    def __init__(self, entries):
        self.entries = entries

    def scan(self):
        return self.entries


def visible(entries):
    # what the portal may show: a named, not hidden, UTF-8 SSID -> its best rssi
    best = {}
    for ssid, _bssid, _ch, rssi, _auth, hidden in entries:
        try:
            name = ssid.decode()
        except UnicodeError:
            continue
        if name and not hidden and (name not in best or rssi > best[name]):
            best[name] = rssi
    return best


@test
def radio_scan_finds_networks():
    # (the checks below would hold of an empty scan, having checked nothing)
    assert raw, "the scan found no network"


@test
def radio_scan_is_a_list_of_documented_tuples():
    # (ssid, bssid, channel, rssi, security, hidden), as network.WLAN.scan documents
    assert type(raw) is list
    for entry in raw:
        assert type(entry) is tuple and len(entry) == 6, entry
        ssid, bssid, ch, rssi, auth, hidden = entry
        assert type(ssid) is bytes and len(ssid) <= 32, entry
        assert type(bssid) is bytes and len(bssid) == 6, entry
        assert type(ch) is int and 1 <= ch <= 196, entry
        assert type(rssi) is int and -128 <= rssi <= 0, entry
        assert type(auth) is int and auth >= 0, entry
        assert hidden in (0, 1), entry


@test
def portal_list_of_this_scan_is_its_strongest_entry_per_ssid_strongest_first():
    nets = wifi.scan(Replay(raw))
    best = visible(raw)
    strongest = sorted(best.items(), key=lambda kv: kv[1], reverse=True)[:15]
    assert [n["rssi"] for n in nets] == [rssi for _, rssi in strongest]
    assert sorted(n["ssid"] for n in nets) == sorted(name for name, _ in strongest)
    for n in nets:
        assert sorted(n) == ["bssid", "ch", "rssi", "sec", "ssid"]
        assert n["rssi"] == best[n["ssid"]]


@test
def portal_list_of_a_fixed_scan_is_exact():
    b = bytes(range(6))
    fixed = [(b"weak-first", b, 1, -80, 3, 0), (b"weak-first", b"\xaa" * 6, 6, -45, 3, 0),
             (b"open", b, 11, -60, 0, 0), (b"", b, 1, -30, 3, 0), (b"hidden", b, 1, -20, 3, 1),
             (b"\xff\xfe", b, 1, -25, 3, 0)]
    fixed += [(b"n%02d" % i, b, 1, -90 - i, 3, 0) for i in range(20)]
    nets = wifi.scan(Replay(fixed))
    assert len(nets) == 15
    assert nets[0] == {"ssid": "weak-first", "bssid": "aa:aa:aa:aa:aa:aa", "rssi": -45,
                       "sec": "WPA2", "ch": 6}
    assert nets[1] == {"ssid": "open", "bssid": "00:01:02:03:04:05", "rssi": -60,
                       "sec": "OPEN", "ch": 11}
    assert [n["ssid"] for n in nets[2:]] == ["n%02d" % i for i in range(13)]


if sys.platform == "linux":  # the radio file exists only on the Unix port
    @test
    def unix_radio_keeps_the_strongest_bssid():
        assert wifi.scan(sta) == [
            {"ssid": "home", "bssid": "aa:bb:cc:00:00:02", "rssi": -40, "sec": "WPA2",
             "ch": 6},
            {"ssid": "cafe", "bssid": "aa:bb:cc:00:00:03", "rssi": -60, "sec": "OPEN", "ch": 11}]


@test
def a_station_that_was_joining_scans_once_onboard_made_it_leave():
    # setup mode's first step (onboard.wifi.leave): a station whose join is
    # under way, or whose radio retries a lost network, scans nothing (v1.25:
    # an empty list, at once) until disconnect() ends that join
    import asyncio

    sta.config(reconnects=-1)  # as after a boot: the radio retries for ever
    sta.connect("onboard-no-such-network", "")
    asyncio.run(wifi.leave(sta))
    assert sta.scan(), "nothing scanned after leave()"


summary()
