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


def init(button_pin, led_pin):
    _pins["button"] = machine.Pin(button_pin, machine.Pin.IN, machine.Pin.PULL_UP)
    _pins["led"] = machine.Pin(led_pin, machine.Pin.OUT) if led_pin is not None else None


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
    if _pins.get("led") is not None:
        _pins["led"].value(1 if on else 0)


def emit(event):
    import json

    print("@event " + json.dumps(event))


def reboot():
    machine.reset()
