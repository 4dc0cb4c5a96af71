# The device's wall clock. An ESP32 wakes at 2000-01-01 and mbedTLS checks
# certificate dates, so the time is set (SNTP, else a plain-HTTP Date) after
# the network is up and before the first verified TLS connection. Until then
# now() is None, on the Unix port too: the host's clock is not trusted.
# Nothing earlier than the firmware's build time is ever accepted.
import time

try:
    from onboard._build import BUILD, BUILD_DATE  # pyright: ignore  (written by `onboard build`)
except ImportError:
    BUILD = 1793491200  # 2026-11-01: the floor of an unbuilt source tree
    BUILD_DATE = "Nov  1 2026 00:00:00"
# BUILD: the firmware's build time (Unix seconds), the floor the clock never
# runs below; BUILD_DATE: the same as C's __DATE__ " " __TIME__ ("Jan 19 2024
# 12:25:30"). Names, not accessor functions: a function costs RAM for as long
# as this module is loaded, which is always.

# seconds the port's time.time() counts from 1970 to its epoch (2000 on ESP32)
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0

_delta = None  # learned Unix time minus the port's clock (time.time() + _EPOCH)
_board = None


def attach(board):
    """The board whose set_time(unix_seconds) sets the clock TLS reads (the
    runtime attaches its board; without one only now() learns the time).
    A board clock that reads earlier than the build is set to the build time
    (still unknown to now()): certificates older than the firmware verify."""
    global _board
    _board = board
    if int(time.time()) + _EPOCH < BUILD:
        board.set_time(BUILD)


def now():
    """Unix seconds, or None while the time is unknown."""
    return None if _delta is None else (int(time.time()) + _EPOCH) + _delta


def is_known():
    return _delta is not None


def _set(unix):
    global _delta
    if unix is None or unix < BUILD:
        return False
    if _board:
        _board.set_time(unix)
    _delta = unix - (int(time.time()) + _EPOCH)
    return True


async def sync(config, timeout_ms=5000):
    """Set the clock from SNTP (config time.ntp, default pool.ntp.org), else
    from the Date of a plain-HTTP time.http URL. True once set; False when no
    source answered acceptably (retry later). ValueError names a bad field.
    (The code is onboard.timesync's: loaded for this, let go of afterwards.)"""
    from onboard.timesync import sync

    return await sync(config, timeout_ms)
