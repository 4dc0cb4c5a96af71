# Station configuration: the saved networks (up to 8, most recently good
# first) and the checks every way of entering credentials shares. Joining a
# network (join, join_saved, reason) is onboard.wifijoin's: the session
# imports it, and wifi.join and the others load it on first use (Improv).
# Setup mode, which takes credentials and scans, keeps none of it in RAM.
import asyncio
import time
from binascii import hexlify
from micropython import const

MAX_NETWORKS = const(8)  # saved networks kept, at most (trial.switch has its own copy)
_MAX_SSID = const(32)


def check_credentials(ssid, password):
    """Raise ValueError naming the field when ssid or password is unusable."""
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= _MAX_SSID:
        raise ValueError("ssid: must be 1-32 bytes of text")
    if not isinstance(password, str):
        raise ValueError("password: must be text")
    n = len(password)
    if n == 0:
        return  # open network
    # (checked as UTF-8 bytes: a str taken apart by character would intern each
    # character of the password as a qstr, in RAM for good)
    if n == 64:
        for c in password.encode():
            if c not in b"0123456789abcdefABCDEF":
                raise ValueError("password: 64 characters must all be hex digits")
        return
    # 5: a WEP key as text (13 characters, or 10 or 26 hex digits, fall in 8-63)
    if not (8 <= n <= 63 or n == 5):
        raise ValueError("password: must be 8-63 characters, 64 hex digits, a WEP key, or empty")
    for c in password.encode():
        if not 32 <= c <= 126:  # " " to "~"
            raise ValueError("password: must be printable ASCII")


def check_ip(fields):
    """The static address of a setup request: None (DHCP: no "ip"), else
    [ip, mask, gw, dns, dns2] checked; ValueError names the field. mask,
    gw are needed with ip; dns defaults to gw, dns2 to dns."""
    if not fields.get("ip"):
        return None
    out = []
    for name in ("ip", "mask", "gw", "dns", "dns2"):
        v = fields.get(name) or (out[-1] if name[0] == "d" else "")
        parts = v.split(".")
        ok = len(parts) == 4
        for p in parts:  # (a loop: a generator is one more function in RAM)
            ok = ok and p.isdigit() and len(p) <= 3 and int(p) < 256
        if not ok:
            raise ValueError("%s: must be an IPv4 address like 192.168.1.20" % name)
        out.append(v)
    return out


async def leave(sta):
    """Leave the network, ending any join under way (the radio's own retries
    after a lost link among them). ESP-IDF handles the disconnect a moment
    after disconnect() returns; until then the station still reads as joined
    (and its DHCP client runs)."""
    sta.disconnect()
    start = time.ticks_ms()
    while sta.isconnected() and time.ticks_diff(time.ticks_ms(), start) < 1000:
        await asyncio.sleep_ms(10)


def saved(store):
    """The saved networks, most recently good first."""
    return store.get("wifi").get("networks", [])


def remember(store, ssid, password, ip=None, more=None):
    """Put a network first in the saved list (one store write, none when it
    is already first with the same password and address). ip: its static
    address (check_ip), None for DHCP. more: other sections' fields
    ({section: fields}) put in the same write."""
    check_credentials(ssid, password)
    net = {"ssid": ssid, "password": password}
    if ip:
        net["ip"] = ip
    nets = [net]
    for n in saved(store):  # (a loop: a comprehension is a function in RAM)
        if n.get("ssid") != ssid and len(nets) < MAX_NETWORKS:
            nets.append(n)
    return store.put(dict(more or {}, wifi={"networks": nets}))


# Edgent's names, indexed by the ESP32's authmode
SEC_NAMES = ("OPEN", "WEP", "WPA", "WPA2", "WPA+WPA2", "WPA2-EAP", "WPA3", "WPA2+WPA3", "WAPI")


def mac_text(raw, sep=":"):
    """A MAC or BSSID (bytes) as lower-case hex, "aa:bb:..." by default."""
    # (hexlify, not a generator: that would be one more function in RAM; and
    # not hexlify(raw, ""), which puts a NUL between the bytes)
    return (hexlify(raw, sep) if sep else hexlify(raw)).decode()


def scan(sta, limit=15):
    """Visible networks, one per SSID (its strongest), strongest first."""
    best = {}
    for ssid, bssid, ch, rssi, auth, hidden in sta.scan():
        try:
            name = ssid.decode()
        except UnicodeError:
            continue
        if not name or hidden:
            continue
        if name not in best or rssi > best[name]["rssi"]:
            best[name] = {"ssid": name, "rssi": rssi, "ch": ch,
                          "bssid": mac_text(bssid),
                          "sec": SEC_NAMES[auth] if 0 <= auth < 9 else "unknown"}
    nets = sorted(best.values(), key=lambda n: n["rssi"], reverse=True)
    return nets[:limit]


def __getattr__(name):
    # wifi.join, wifi.join_saved, wifi.reason: onboard.wifijoin's
    if name in ("join", "join_saved", "reason"):
        from onboard import wifijoin

        return getattr(wifijoin, name)
    raise AttributeError(name)
