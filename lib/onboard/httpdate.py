# The Date of an HTTP reply: read as Unix seconds (http_date), and learned as
# the time from a verified server (learn). A module of its own, small, as it
# is loaded after each of a profile's HTTPS requests, while that request's
# reply and code are still in RAM; onboard.timesync uses it for its plain-HTTP
# fallback.
from micropython import const

from onboard.clock import _set, now

_MONTHS = const("JanFebMarAprMayJunJulAugSepOctNovDec")


def http_date(text):
    """Unix seconds from an HTTP Date (IMF-fixdate, "Sun, 22 Nov 2026 00:14:00
    GMT"), or None when it is not one."""
    try:
        wd, d, mon, y, hms, gmt = text.split(" ")
        h, mi, s = map(int, hms.split(":"))
        m = _MONTHS.index(mon)
        d, y = int(d), int(y)
        if wd[-1] != "," or gmt != "GMT" or len(mon) != 3 or m % 3 or not 0 < d < 32 \
                or y < 1970 or not 0 <= h < 24 or not 0 <= mi < 60 or not 0 <= s < 61:
            return None
    except (ValueError, AttributeError, IndexError):
        return None
    m = m // 3 + 1
    if m < 3:
        y -= 1
        m += 12
    days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * m - 457) // 5 + d - 719469
    return days * 86400 + h * 3600 + mi * 60 + s


def learn(text):
    """A verified server's Date header refines the clock: taken when the time
    is unknown or off by 2 s or more (Date counts whole seconds). True if taken."""
    unix = http_date(text or "")
    t = now()
    if t is not None and unix is not None and -2 < unix - t < 2:
        return False
    return _set(unix)
