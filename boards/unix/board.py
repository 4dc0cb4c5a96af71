# The Unix-port board: a simulated radio (network.py beside this file), the
# portal and DNS on loopback, the flash as a folder. `onboard device run`
# sets the environment variables read here.
import os

NAME = "unix"
CHIP = "Unix port"
AP_ADDRESS = "127.0.0.1"
FLASH = os.getenv("ONBOARD_FLASH") or "."
PORTAL_PORT = int(os.getenv("ONBOARD_PORTAL_PORT") or 8080)
DNS_PORT = int(os.getenv("ONBOARD_DNS_PORT") or 5353)
MAC = os.getenv("ONBOARD_MAC") or "02:0b:0a:0d:00:01"
LED_PIN = None
BUTTON_PIN = None


def store_path():
    return FLASH + "/onboard.json"


def unique_id():
    return bytes.fromhex(MAC.replace(":", ""))  # (as the stand-in radio's _mac: no generator)


def emit(event):
    """A device event for `onboard device run` (one line, ends with a newline).
    One with a heap figure (the config's report_heap, for the benchmarks) is
    preceded by MicroPython's count of the names interned so far (its qstr
    pool line), which `onboard device run` adds to the event."""
    import json

    if "heap" in event:
        import micropython

        micropython.qstr_info()
    print("@event " + json.dumps(event))


def reboot():
    import sys

    sys.exit(3)  # `onboard device run` starts the device again on exit code 3


def set_time(unix):
    pass  # the host's clock is already right; onboard.clock keeps its own offset


_led = {"calls": 0, "last": ""}


def led(on):
    """The LED as a file, $ONBOARD_LED: "<calls> <the last 64: 1 on, 0 off>",
    replaced whole at each call (a reader never sees half of it)."""
    path = os.getenv("ONBOARD_LED")
    if path:
        _led["calls"] += 1
        _led["last"] = (_led["last"] + ("1" if on else "0"))[-64:]
        with open(path + ".tmp", "w") as f:
            f.write("%d %s" % (_led["calls"], _led["last"]))
        os.rename(path + ".tmp", path)


def config_path():
    return os.getenv("ONBOARD_CONFIG") or FLASH + "/config.json"


def ap_mac():
    import network

    return network.WLAN(network.AP_IF).config("mac")


def start_ap(essid, password=None):
    # the simulated access point: the portal listens on loopback
    import network

    ap = network.WLAN(network.AP_IF)
    ap.config(essid=essid, password=password or "",
              authmode=network.AUTH_WPA2_PSK if password else network.AUTH_OPEN)
    ap.active(True)
    if os.getenv("ONBOARD_AIR"):
        from air import show

        show()


def stop_ap():
    import network

    network.WLAN(network.AP_IF).active(False)
    if os.getenv("ONBOARD_AIR"):
        from air import show

        show()


def uart():
    """The stream Improv speaks on: the pty of `onboard device run --serial`."""
    path = os.getenv("ONBOARD_SERIAL")
    return open(path, "r+b") if path else None


def button():
    """The simulated button, from the file $ONBOARD_BUTTON: "down" holds it;
    "press <ms> <any>" is one press of that length, timed by the device
    (boards/unix/press.py: loaded once a test presses, so the lives'
    heap figures hold none of it, as a board's button is one pin)."""
    path = os.getenv("ONBOARD_BUTTON")
    try:
        with open(path) as f:
            text = f.read(64).strip()
    except (OSError, TypeError):
        return False
    if text.startswith("press "):
        from press import pressed

        return pressed(path, text)
    return text == "down"
