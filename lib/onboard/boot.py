# Booting: the config read and the runtime made with its fields. Loaded by
# onboard.runtime.main() once and let go of before the device runs, as
# nothing here is needed again (a function costs RAM while its module is
# loaded from a filesystem).
import asyncio
import time
from micropython import const

from onboard import clock, log
from onboard.runtime import Runtime
from onboard.store import Store

# onboard.codes' values, folded in at compile time (the module is not loaded)
_ERROR = const("ERROR")
_ERR_CONFIG = const(700)
_TAG = const("runtime")
_DAY = const(86400)


# What every way online loads (the session, joining, the time sync, the TLS
# context's loader, the transport), loaded once at boot and let go of again:
# only the names their code uses stay, interned as a loaded module's are, for
# good. Interned here they sit low in the heap, before anything else; interned
# when the first session loads this code, they would sit for good among its
# code and setup mode's, and once that is let go of, cut the space it leaves
# into holes too small for the TLS context's one large block (32-bit Blynk
# life, .mpy on the filesystem: 50,432-51,456 B smallest heap before, 49,664-
# 49,920 after; Spoke Zone 52,736 -> 51,712 B).
_GOING_ONLINE = ("wifijoin", "session", "cloud", "timesync", "httpdate", "ca", "net")


def intern_names():
    from onboard.runtime import forget, loaded, new_since

    for name in _GOING_ONLINE:
        before = loaded()
        __import__("onboard." + name)
        forget(*new_since(before))


def runtime(board, config_path=None):
    """The device's Runtime from its config file. A config it cannot use
    shows ERROR with 700 and waits: rebooting would not help."""
    import json

    intern_names()

    try:
        with open(config_path or board.config_path()) as f:
            config = json.load(f)
        return make(config, board)
    except (OSError, ValueError, TypeError, ImportError, AttributeError) as e:
        log.error(_TAG, "config unusable: %s", type(e).__name__)
        board.emit({"state": _ERROR, "portal": None, "last_error": _ERR_CONFIG})
        while True:
            board.led(True)
            time.sleep_ms(50)
            board.led(False)
            time.sleep_ms(950)


# The config's fields onboard reads, checked at boot: one the device cannot
# use shows ERROR 700 naming it, where the first state to read it would fail
# at every boot or every try, for good (setup mode, the join, the session).
# Numbers: (name, least, most); seconds up to a day (an ESP32's ticks compare
# spans 6.2 days); keepalive_s a whole number of seconds as MQTT carries it
# (two bytes; plgd's Ping interval, which cannot be 0); rejoin_after a count of tries.
_NUMBERS = (("wifi_timeout_s", 1, _DAY), ("timeout_s", 1, _DAY), ("keepalive_s", 1, 65535),
            ("port", 1, 65535), ("portal.idle_timeout_s", 1, _DAY), ("rejoin_after", 0, 65535),
            ("trial_s", 0, _DAY))
_WHOLE = ("keepalive_s", "port", "rejoin_after")
_TEXTS = ("profile", "host", "api", "ca", "portal.pop", "vendor", "name", "fw_ver", "fw_type",
          "tmpl_id", "cert", "key")


def unusable(config):
    """(field, what it must be) for the first field of config the device
    cannot use, else None. (Never its value: some are secrets.)"""
    portal = config.get("portal", {})
    if type(portal) is not dict:
        return "portal", "an object"
    for name, low, high in _NUMBERS:
        v = (portal if "." in name else config).get(name.split(".")[-1], low)
        if type(v) not in (int, float) or not low <= v <= high or (
                name in _WHOLE and type(v) is float):
            return name, "a %snumber from %d to %d" % ("whole " * (name in _WHOLE), low, high)
    for name in _TEXTS:
        v = (portal if "." in name else config).get(name.split(".")[-1], "")
        # (a null ca or pop is taken as none given, as where they are read)
        if type(v) is not str and not (v is None and name in ("ca", "portal.pop")):
            return name, "text"
    if bool(config.get("cert")) != bool(config.get("key")):  # (the device's own: both or none)
        return "cert" if config.get("key") else "key", "given with the other (cert, key)"
    if type(config.get("time") or {}) is not dict:  # (null: none given, as timesync reads it)
        return "time", "an object"
    if type(config.get("tls", True)) is not bool:
        return "tls", "true or false"
    # the backoff's seconds: base and cap above 0 (0 retries at once, for
    # ever: a login storm; a cap over a day is taken as a day), stable 0 or more
    backoff = config.get("backoff", {})
    if type(backoff) is not dict:
        return "backoff", "an object"
    for name in ("base", "cap", "stable"):
        v = backoff.get(name, 1)
        if type(v) not in (int, float) or v < 0 or not v and name != "stable":
            return "backoff." + name, "a number of 0 or more" if name == "stable" else \
                "a number above 0"
    # the access point's WPA2 key: none (an open access point), or a network
    # password as onboard.wifi checks one (printable ASCII) of 8-63
    # characters. An ESP32 refuses a shorter one only once setup mode starts
    # the access point (v1.25: OSError "Wifi Invalid Password"), and its
    # WLAN.config cuts a longer one to 63 (a 64-hex-digit key would become
    # a passphrase no phone given the key could join with).
    # (onboard.wifi is let go of again, as intern_names does.)
    from onboard.runtime import forget, loaded, new_since

    before = loaded()
    from onboard.wifi import check_credentials

    key = portal.get("ap_password") or ""
    try:
        check_credentials("ap", key)
        ok = not 0 < len(key) < 8 and len(key) < 64
    except ValueError:
        ok = False
    forget(*new_since(before))
    if not ok:
        return "portal.ap_password", "8-63 printable ASCII characters, or empty"
    return None


def make(config, board):
    """A Runtime with every field it keeps (onboard.runtime names them)."""
    bad = unusable(config)
    if bad:
        log.error(_TAG, "config: %s must be %s", bad[0], bad[1])
        raise ValueError
    rt = Runtime()
    rt.config = config
    rt.board = board
    rt.real = rt.store = Store(board.store_path())
    rt.profile = __import__("onboard.clouds." + config.get("profile", "blynk"), None, None, ["x"])
    # a profile's check in a module of its own (blynk's) is loaded here once
    # and let go of, as intern_names does: its names are interned low in the
    # heap, not during setup mode's first /config (32-bit Blynk from ROMFS:
    # 32,512-33,280 B smallest heap, 33,024 five times without)
    getattr(rt.profile, "check", None)
    clock.attach(board)  # the board's clock never reads earlier than the build
    rt.state = rt.portal_url = rt.session = rt.ctx = rt.on_message = None
    rt.sta = rt.pressed_at = None
    rt.last_error = 0
    rt.arrived = asyncio.Event()
    rt.fresh = rt.setup_requested = rt.online = False
    rt.outbox = []
    rt.mac = board.unique_id()
    rt.helpers = ()
    backoff = config.get("backoff", {})
    # the cap at most a day: an ESP32's asyncio refuses a sleep of 2**29 ms
    # (6.2 days) or more (OverflowError), where the Unix port would sleep
    rt.backoff = (float(backoff.get("base", 2)), min(float(backoff.get("cap", 64)), _DAY),
                  float(backoff.get("stable", 30)))
    return rt
