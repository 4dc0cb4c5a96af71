# Setting onboard.clock from the network: SNTP (RFC 4330), else the Date of
# a plain-HTTP reply; and refining it from the Date of a verified HTTPS reply
# (learn). Needed at a session's start and after a profile's HTTPS request,
# so a module of its own, let go of after each.
import time
from micropython import const

from onboard.clock import _set, now

_MONTHS = const("JanFebMarAprMayJunJulAugSepOctNovDec")
_NTP_PORT = const(123)
_NTP_LEN = const(48)
_NTP_1900 = 2208988800  # seconds from 1900 (NTP era 0) to 1970
_POLL_MS = const(20)


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


async def _sntp(host, port, timeout_ms):
    # Unix seconds from one SNTP exchange (RFC 4330), or None. A reply that is
    # refused is ignored: a spoofer cannot end the wait early with it.
    import asyncio
    import os
    import socket

    sock = None
    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(addr)  # the stack drops datagrams from anyone else
        nonce = os.urandom(8)  # our transmit time: the reply must echo it as its originate
        sent = time.ticks_ms()
        sock.send(b"\x23" + bytes(39) + nonce)  # LI 0, version 4, mode 3 (client)
        while time.ticks_diff(time.ticks_ms(), sent) < timeout_ms:
            await asyncio.sleep_ms(_POLL_MS)
            try:
                r = sock.recv(_NTP_LEN + 16)
            except OSError as e:
                if e.args[0] not in (11, 115):  # EAGAIN, EINPROGRESS: nothing yet
                    return None
                continue
            # mode 4/5 (server, broadcast), version 3/4, not unsynchronised
            # (LI 3), stratum 1-15 (0 is a kiss-o'-death), a transmit time
            if len(r) >= _NTP_LEN and r[0] & 7 in (4, 5) and r[0] >> 3 & 7 in (3, 4) \
                    and r[0] >> 6 != 3 and 0 < r[1] < 16 and r[24:32] == nonce and any(r[40:48]):
                # modulo 2**32: NTP era 1 starts in 2036
                return (int.from_bytes(r[40:44], "big") - _NTP_1900) % (1 << 32) + (r[44] >> 7)
    except OSError:
        pass
    finally:
        if sock:
            sock.close()
    return None


async def sync(config, timeout_ms=5000):
    """clock.sync(): SNTP servers in turn, then time.http's Date."""
    cfg = config.get("time") or {}
    servers = cfg.get("ntp", ("pool.ntp.org",))
    url = cfg.get("http")
    if url and (type(url) is not str or not url.startswith("http://")):
        raise ValueError("time.http: a plain http:// URL")
    for server in servers if isinstance(servers, (list, tuple)) else (None,):
        host, _, port = str(server).partition(":")
        if type(server) is not str or not host or port and not port.isdigit():
            raise ValueError("time.ntp: a list of host or host:port")
        if _set(await _sntp(host, int(port or _NTP_PORT), timeout_ms)):
            return True
    if url:
        from onboard.ahttp import arequest

        try:
            # HEAD: the headers are all we need, whatever the status
            resp = await arequest("HEAD", url, timeout=timeout_ms / 1000)  # pyright: ignore  (seconds, a float is fine)
        except (OSError, ValueError):
            return False
        return _set(http_date(resp.headers.get("date", "")))
    return False
