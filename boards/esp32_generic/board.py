# ESP32 (generic DevKit): the BOOT button on GPIO0, an LED on GPIO2, the
# access point at 192.168.4.1, Improv on the USB serial REPL.
import machine
import network
import sys

NAME = "esp32_generic"
CHIP = "ESP32"
AP_ADDRESS = "192.168.4.1"
PORTAL_PORT = 80
DNS_PORT = 53
LED_PIN = 2
BUTTON_PIN = 0
_button = machine.Pin(BUTTON_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
_led = machine.Pin(LED_PIN, machine.Pin.OUT) if LED_PIN is not None else None


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
    return _button.value() == 0


def led(on):
    if _led is not None:
        _led.value(1 if on else 0)


def emit(event):
    import json

    print("@event " + json.dumps(event))


def reboot():
    machine.reset()
