# Setting onboard.clock from the network: SNTP (RFC 4330), else the Date of
# a plain-HTTP reply (read by onboard.httpdate, which also refines the clock
# from the Date of a verified HTTPS reply). Needed at a session's start, so a
# module of its own, let go of after it.
import time
from micropython import const

from onboard.clock import _set

_NTP_PORT = const(123)
_NTP_LEN = const(48)
_NTP_1900 = 2208988800  # seconds from 1900 (NTP era 0) to 1970
_POLL_MS = const(20)


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
        from onboard.httpdate import http_date

        return _set(http_date(resp.headers.get("date", "")))
    return False
