# Joining, as the runtime joins (onboard.wifijoin): a network not in the air
# is 720, and the join that follows (of a network that is there) is not ended
# by the reason the failed one left. MicroPython's ESP32 station keeps that
# reason in status() through disconnect() and connect() until an address
# comes. On a board: the network test_params.json names ({"wifi": {"ssid",
# "password"}}, given by `onboard test-device --wifi-ssid`); on the Unix
# port, a radio file made here for the stand-in radio.
import asyncio
import json
import os
import sys

from tinytest import raises, station, summary, test

from onboard import wifijoin
from onboard.wifi import leave

MISSING = "onboard-no-such-network"

try:
    with open("test_params.json") as f:
        wifi = json.load(f).get("wifi")
except (OSError, ValueError):
    wifi = None
if sys.platform == "linux":
    wifi = {"ssid": "home", "password": "correct horse"}
    with open("radio_join.json", "w") as f:
        json.dump({"networks": [dict(wifi, bssid="aa:bb:cc:00:00:01", rssi=-50, sec="WPA2")]},
                  f)
    os.putenv("ONBOARD_RADIO", "radio_join.json")

sta = station()


def join(ssid, password):
    return asyncio.run(wifijoin.join(sta, ssid, password, 60000))


@test
def a_network_not_in_the_air_is_720():
    assert join(MISSING, "") == 720


if wifi:
    @test
    def the_next_join_of_a_network_in_the_air_gets_an_address():
        assert join(wifi["ssid"], wifi["password"]) == 0, sta.status()
        assert sta.isconnected() and sta.ifconfig()[0] != "0.0.0.0"

    @test
    def a_connect_while_the_radio_joins_is_refused():
        # (MicroPython v1.25 on an ESP32: OSError "Wifi Internal Error")
        asyncio.run(leave(sta))
        sta.connect(wifi["ssid"], wifi["password"])
        try:
            raises(OSError, sta.connect, wifi["ssid"], wifi["password"])
        finally:
            sta.disconnect()

    @test
    def a_join_begun_while_the_radio_still_joins_gets_an_address():
        # (the join leaves the radio's join first: otherwise refused, as above)
        asyncio.run(leave(sta))
        sta.connect(MISSING, "")
        assert join(wifi["ssid"], wifi["password"]) == 0, sta.status()

summary()
