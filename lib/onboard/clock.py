# The device's wall clock. An ESP32 wakes at 2000-01-01 and mbedTLS checks
# certificate dates, so the time is set (SNTP, else a plain-HTTP Date) after
# the network is up and before the first verified TLS connection. Until then
# now() is None, on the Unix port too: the host's clock is not trusted.
# Nothing earlier than the firmware's build time is ever accepted.
import time
from micropython import const

try:
    from onboard._build import BUILD, BUILD_DATE  # stamped by `onboard build`
except ImportError:
    BUILD = 1793491200  # 2026-11-01: the floor of an unbuilt source tree
    BUILD_DATE = "Nov  1 2026 00:00:00"

_NTP_PORT = const(123)
_NTP_LEN = const(48)
_NTP_1900 = 2208988800  # seconds from 1900 (NTP era 0) to 1970
_POLL_MS = const(20)
_MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec"
# seconds the port's time.time() counts from 1970 to its epoch (2000 on ESP32)
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0

_delta = None  # learned Unix time minus the port's clock (time.time() + _EPOCH)
_board = None


def attach(board):
    """The board whose set_time(unix_seconds) sets the clock TLS reads."""
    global _board
    _board = board


def floor():
    """The firmware's build time (Unix seconds): the clock never runs earlier."""
    return BUILD


def build_date():
    """The build time as C's __DATE__ " " __TIME__ ("Jan 19 2024 12:25:30")."""
    return BUILD_DATE


def _port():
    return int(time.time()) + _EPOCH


def now():
    """Unix seconds, or None while the time is unknown."""
    return None if _delta is None else _port() + _delta


def is_known():
    return _delta is not None


def _set(unix):
    global _delta
    if unix is None or unix < BUILD:
        return False
    board = _board
    if board is None:
        try:
            import board  # the firmware's board module, when attach() was not called
        except ImportError:
            board = None
    if board is not None and hasattr(board, "set_time"):
        board.set_time(unix)
    _delta = unix - _port()
    return True


def http_date(text):
    """Unix seconds from an HTTP Date (IMF-fixdate, "Sun, 22 Nov 2026 00:14:00
    GMT"), or None when it is not one."""
    try:
        wd, d, mon, y, hms, gmt = text.split(" ")
        h, mi, s = (int(x) for x in hms.split(":"))
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


def _reply_time(r, nonce, rtt_ms):
    # Unix seconds from an SNTP reply (RFC 4330), or None when it is refused
    if len(r) < _NTP_LEN:
        return None
    mode, vn, li = r[0] & 7, r[0] >> 3 & 7, r[0] >> 6
    if mode not in (4, 5) or vn not in (3, 4) or li == 3 or not 0 < r[1] < 16 \
            or r[24:32] != nonce or not any(r[40:48]):
        return None  # stratum 0 is a kiss-o'-death; the originate must echo ours
    secs = int.from_bytes(r[40:44], "big")
    # bit 0 clear: NTP era 1 (from 2036-02-07)
    unix = secs - _NTP_1900 if secs & 0x80000000 else secs + (1 << 32) - _NTP_1900
    return unix + (r[44] * 1000 // 256 + rtt_ms // 2 + 500) // 1000


async def _sntp(server, timeout_ms):
    import asyncio
    import os
    import socket

    host, _, port = server.partition(":")
    if not host:
        raise ValueError("time.ntp: a host or host:port")
    sock = None
    try:
        addr = socket.getaddrinfo(host, int(port or _NTP_PORT), 0, socket.SOCK_DGRAM)[0][-1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(addr)  # the stack drops datagrams from anyone else
        # LI 0, version 4, mode 3 (client); a random transmit time that the
        # server must echo as the originate time
        nonce = os.urandom(8)
        sent = time.ticks_ms()
        sock.send(b"\x23" + bytes(39) + nonce)
        while True:
            try:
                r = sock.recv(_NTP_LEN + 16)
            except OSError as e:
                if e.args[0] not in (11, 115):  # EAGAIN, EINPROGRESS: nothing yet
                    return None
            else:
                unix = _reply_time(r, nonce, time.ticks_diff(time.ticks_ms(), sent))
                if unix is not None:
                    return unix
            if time.ticks_diff(time.ticks_ms(), sent) >= timeout_ms:
                return None
            await asyncio.sleep_ms(_POLL_MS)
    except (OSError, ValueError, IndexError):
        if not port.isdigit() and port:
            raise ValueError("time.ntp: port of %s" % host) from None
        return None
    finally:
        if sock:
            sock.close()


async def sync(config, timeout_ms=5000):
    """Set the clock from SNTP (config time.ntp, default pool.ntp.org), else
    from the Date of a plain-HTTP time.http URL. True once set; False when no
    source answered acceptably (retry later). ValueError names a bad field."""
    cfg = config.get("time") or {}
    servers = cfg.get("ntp", ("pool.ntp.org",))
    if not isinstance(servers, (list, tuple)) or not all(isinstance(s, str) for s in servers):
        raise ValueError("time.ntp: a list of host or host:port")
    for server in servers:
        if _set(await _sntp(server, timeout_ms)):
            return True
    url = cfg.get("http")
    if url:
        if not isinstance(url, str) or not url.startswith("http://"):
            raise ValueError("time.http: a plain http:// URL")
        from onboard.http import arequest

        try:
            # HEAD: the headers are all we need, whatever the status
            resp = await arequest("HEAD", url, timeout=timeout_ms / 1000)
        except (OSError, ValueError):
            return False
        return _set(http_date(resp.headers.get("date", "")))
    return False
