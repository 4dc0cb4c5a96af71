# Station configuration: the saved networks (up to 8, most recently good
# first) and the checks every way of entering credentials shares.
from micropython import const

from onboard.codes import ERR_CONFIG, ERR_NETWORK, ERR_NO_IP, ERR_NOT_FOUND, ERR_WRONG_PASSWORD

MAX_NETWORKS = const(8)
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
    if n == 64:
        for c in password:
            if c not in "0123456789abcdefABCDEF":
                raise ValueError("password: 64 characters must all be hex digits")
        return
    if not 8 <= n <= 63:
        raise ValueError("password: must be 8-63 characters, 64 hex digits, or empty")
    for c in password:
        if not " " <= c <= "~":
            raise ValueError("password: must be printable ASCII")


def saved(store):
    """The saved networks, most recently good first."""
    return store.get("wifi").get("networks", [])


def remember(store, ssid, password):
    """Put a network first in the saved list (one store write, none when it
    is already first with the same password)."""
    check_credentials(ssid, password)
    nets = [n for n in saved(store) if n.get("ssid") != ssid]
    nets.insert(0, {"ssid": ssid, "password": password})
    return store.put("wifi", networks=nets[:MAX_NETWORKS])


_GOT_IP = const(1010)
_CONNECTING = const(1001)
SEC_NAMES = {0: "OPEN", 1: "WEP", 2: "WPA/PSK", 3: "WPA2/PSK", 4: "WPA/WPA2/PSK",
             6: "WPA3/PSK", 7: "WPA2/WPA3/PSK"}


def mac_text(raw, sep=":"):
    """A MAC or BSSID (bytes) as lower-case hex, "aa:bb:..." by default."""
    return sep.join("%02x" % b for b in raw)


def reason(status):
    """The last_error code for an ESP32 station status that ended a join."""
    if status in (201, 210, 211, 212):
        return ERR_NOT_FOUND
    if status in (202, 204):  # some access points report a wrong key as a handshake timeout
        return ERR_WRONG_PASSWORD
    if status == _CONNECTING:  # associated, but no address came
        return ERR_NO_IP
    return ERR_NETWORK


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
                          "sec": SEC_NAMES.get(auth, "unknown")}
    nets = sorted(best.values(), key=lambda n: n["rssi"], reverse=True)
    return nets[:limit]


async def join(sta, ssid, password, timeout_ms=15000):
    """Join one network: 0 when an address came, else its last_error code."""
    import asyncio
    import time

    sta.active(True)
    sta.disconnect()
    sta.connect(ssid, password)
    start = time.ticks_ms()
    status = sta.status()
    while time.ticks_diff(time.ticks_ms(), start) < timeout_ms:
        status = sta.status()
        if status == _GOT_IP:
            return 0
        if status not in (_CONNECTING, 1000):
            break
        await asyncio.sleep_ms(100)
    sta.disconnect()
    return reason(status)


async def join_saved(store, sta, timeout_ms=15000):
    """Try the saved networks, most recently good first: (0, ssid) once one
    joins (it moves to the front of the list), else (last_error, None)."""
    error = ERR_CONFIG  # nothing saved
    for net in saved(store):
        code = await join(sta, net["ssid"], net["password"], timeout_ms)
        if not code:
            remember(store, net["ssid"], net["password"])
            return 0, net["ssid"]
        error = code
    return error, None
