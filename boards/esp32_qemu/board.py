# The emulated ESP32 (../shared/tools/esp32-qemu, `onboard esp32 run`):
# esp32_generic plus the emulator's one difference. Nothing on the host can
# reach the emulated access point, so setup mode's portal listens on the
# station interface instead, joined to the emulator's open network
# "Espressif"; QEMU forwards a host port on 127.0.0.1 to it, and that is the
# address a phone app (or a test) puts in its Host header.
import network
import time

from esp32_common import *  # noqa: F403  everything else as on a board
from esp32_common import init

NAME = "esp32_qemu"
CHIP = "ESP32 (QEMU)"
LED_PIN = 2
BUTTON_PIN = 0
AP_ADDRESS = "127.0.0.1"  # the portal is reached through QEMU's forward on the host's loopback
SETUP_NETWORK = "Espressif"  # an open network of the emulator
_JOIN_MS = 30000
init(BUTTON_PIN, LED_PIN)


def start_ap(essid, password=None):
    """Setup mode: join SETUP_NETWORK on the station (the emulator's stand-in
    for starting the access point essid); the portal then listens there."""
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if sta.isconnected() and sta.config("ssid") == SETUP_NETWORK:
        return
    sta.disconnect()
    sta.connect(SETUP_NETWORK)
    start = time.ticks_ms()
    while not sta.isconnected() and time.ticks_diff(time.ticks_ms(), start) < _JOIN_MS:
        time.sleep_ms(100)
    print("esp32_qemu: setup portal on %s as %s" % (SETUP_NETWORK, sta.ifconfig()[0]))


def stop_ap():
    # leave SETUP_NETWORK, so the runtime joins the stored networks afresh
    network.WLAN(network.STA_IF).disconnect()


def emit(event):
    """As on a board; with the config's report_heap (the runtime adds "heap", the GC
    heap's live bytes) also the GC heap free and the ESP-IDF data heap free, for the
    benchmarks (make bench)."""
    import json

    if "heap" in event:
        import esp32
        import gc

        event["gc_free"] = gc.mem_free()
        event["idf_free"] = sum(h[1] for h in esp32.idf_heap_info(esp32.HEAP_DATA))
    print("@event " + json.dumps(event))
