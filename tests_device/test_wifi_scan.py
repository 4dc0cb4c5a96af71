# The station's scan as the portal shows it: one entry per SSID (its
# strongest), strongest first, at most 15. On the Unix port a radio file is
# made first; on a board the real radio answers.
import json
import network
import os
import sys

from tinytest import summary, test

from onboard import wifi

if sys.platform == "linux":
    with open("radio_test.json", "w") as f:
        json.dump({"networks": [
            {"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -70, "sec": "WPA2/PSK", "ch": 1},
            {"ssid": "home", "bssid": "aa:bb:cc:00:00:02", "rssi": -40, "sec": "WPA2/PSK", "ch": 6},
            {"ssid": "cafe", "bssid": "aa:bb:cc:00:00:03", "rssi": -60, "sec": "OPEN",
             "ch": 11}]}, f)
    os.putenv("ONBOARD_RADIO", "radio_test.json")

sta = network.WLAN(network.STA_IF)
sta.active(True)
nets = wifi.scan(sta)


@test
def one_entry_per_ssid():
    names = [n["ssid"] for n in nets]
    assert len(names) == len(set(names))


@test
def strongest_first():
    rssis = [n["rssi"] for n in nets]
    assert rssis == sorted(rssis, reverse=True)


@test
def at_most_15_with_the_portal_fields():
    assert len(nets) <= 15
    for n in nets:
        assert sorted(n) == ["bssid", "ch", "rssi", "sec", "ssid"]


@test
def unix_radio_keeps_the_strongest_bssid():
    if sys.platform == "linux":
        assert nets[0] == {"ssid": "home", "bssid": "aa:bb:cc:00:00:02", "rssi": -40,
                           "sec": "WPA2/PSK", "ch": 6}


summary()
