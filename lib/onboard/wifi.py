# Station configuration: the saved networks (up to 8, most recently good
# first) and the checks every way of entering credentials shares.
from micropython import const

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
