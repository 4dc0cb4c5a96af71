# What the ESP32 boards share: the access point at 192.168.4.1, Improv on
# the USB serial REPL, the button and LED on the pins a board's board.py
# gives to init(). A board.py is its pins plus `from esp32_common import *`.
import machine
import network
import sys

AP_ADDRESS = "192.168.4.1"
PORTAL_PORT = 80
DNS_PORT = 53
_pins = {}


_RGB_ON = (24, 24, 24)  # a dim white: the LED is a status light, not a lamp


def init(button_pin, led_pin, rgb=False):
    """rgb: the LED is one addressable RGB LED (a WS2812, as on the C3 and S3
    DevKits), which a plain high or low on its pin does not light; the
    firmware's neopixel module drives it."""
    _pins["button"] = machine.Pin(button_pin, machine.Pin.IN, machine.Pin.PULL_UP)
    if led_pin is None:
        _pins["led"] = None
    elif rgb:
        from neopixel import NeoPixel

        _pins["led"] = NeoPixel(machine.Pin(led_pin), 1)
    else:
        _pins["led"] = machine.Pin(led_pin, machine.Pin.OUT)
    _pins["rgb"] = rgb


def store_path():
    return "/onboard.json"


def config_path():
    return "/config.json"


def unique_id():
    return network.WLAN(network.STA_IF).config("mac")


def ap_mac():
    return network.WLAN(network.AP_IF).config("mac")


def start_ap(essid, password=None):
    ap = network.WLAN(network.AP_IF)
    ap.active(True)
    if password:
        ap.config(essid=essid, password=password, authmode=network.AUTH_WPA2_PSK)
    else:
        ap.config(essid=essid, authmode=network.AUTH_OPEN)


def stop_ap():
    network.WLAN(network.AP_IF).active(False)


def uart():
    """Improv speaks on the USB serial REPL: (read stream, write stream)."""
    return sys.stdin.buffer, sys.stdout.buffer


def button():
    return _pins["button"].value() == 0


def led(on):
    pin = _pins.get("led")
    if pin is None:
        return
    if _pins["rgb"]:
        pin[0] = _RGB_ON if on else (0, 0, 0)
        pin.write()
    else:
        pin.value(1 if on else 0)


def emit(event):
    import json

    print("@event " + json.dumps(event))


def reboot():
    machine.reset()


def set_time(unix):
    """Set the RTC to Unix seconds (UTC): the clock mbedTLS reads for
    certificate dates, and time.time() (counted from 2000 on the ESP32)."""
    import time

    # gmtime counts from the port's epoch: 2000 on the ESP32, 1970 where a port moved
    t = time.gmtime(unix - (946684800 if time.gmtime(0)[0] == 2000 else 0))
    machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
