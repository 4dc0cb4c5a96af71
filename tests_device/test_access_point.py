# The access point as setup mode starts and stops it (the board's start_ap
# and stop_ap): the name it was given, WPA2 with a key and open without,
# the address the portal names, off again once stopped, and a key under 8
# characters refused by the radio (which is why the config's ap_password is
# checked at boot). On an ESP32 the code every ESP32 board runs
# (esp32_common: the emulated board's own board.py joins a network instead,
# as nothing on the host reaches its access point); on the Unix port its
# stand-in.
import network
import sys

from tinytest import raises, summary, test

if sys.platform == "esp32":
    import esp32_common as board
else:
    import board

ESSID = "onboard-test-ap"
ap = network.WLAN(network.AP_IF)


def started(*args):
    board.start_ap(*args)
    return ap.active(), ap.config("essid"), ap.config("authmode")


@test
def a_key_gives_a_wpa2_access_point_of_that_name():
    try:
        assert started(ESSID, "8 chars!") == (True, ESSID, network.AUTH_WPA2_PSK)
    finally:
        board.stop_ap()


@test
def no_key_gives_an_open_access_point():
    try:
        assert started(ESSID + "-open") == (True, ESSID + "-open", network.AUTH_OPEN)
    finally:
        board.stop_ap()


@test
def the_access_point_has_the_address_the_portal_names():
    try:
        board.start_ap(ESSID)
        assert ap.ifconfig()[0] == board.AP_ADDRESS
    finally:
        board.stop_ap()


@test
def stop_ap_turns_the_access_point_off():
    board.start_ap(ESSID)
    board.stop_ap()
    assert not ap.active()


@test
def a_key_under_8_characters_is_refused():
    # (MicroPython v1.25 on an ESP32: OSError "Wifi Invalid Password")
    try:
        raises(OSError, board.start_ap, ESSID, "7 chars")
    finally:
        board.stop_ap()


summary()
