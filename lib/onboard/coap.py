# CoAP over TCP and TLS (RFC 8323) on asyncio streams, client and server
# roles on one connection.
#
#   conn = await coap.connect(host, port, ssl=None, handler=None, timeout_ms=10000)
#       (ssl: an SSLContext, e.g. onboard.net.tls_context(ca), for coaps+tcp)
#   conn = await coap.Conn(reader, writer, handler).start(timeout_ms)
#       (a connection accepted by asyncio.start_server: the server role)
#   code, opts, payload = await conn.request(code, path, payload=b"", query=(),
#       content_format=None, accept=None, observe=None, timeout_ms=10000)
#   await conn.ping(timeout_ms)       a Ping answered by a Pong, or Timeout
#   await conn.send(code, token, opts, payload)   any message (a notification)
#   conn.close()
# start() sends our CSM (Max-Message-Size = max_size) and waits for the
# peer's. A reader task then answers Pings, matches responses to requests by
# token and calls handler(code, opts, payload) for each request (a function
# or a coroutine function, run in the reader task: it must not wait for
# another response on this connection) whose (code, opts, payload) is sent
# back with the request's token. Codes are bytes as on the wire: GET=1,
# POST=2, PUT=3, DELETE=4, 2.05 = 0x45 (class << 5 | detail). opts is a list
# of (number, value) with values bytes as received; sending, a value may be
# an int or a str too. opt(opts, n) is the first value of option n, path(opts)
# the Uri-Path joined by "/".
# Errors: malformed or oversized input -> ValueError("coap: <why>") (parse)
# and the connection aborted; no answer in time -> onboard.errors.Timeout;
# connection lost -> ProtocolError. Nothing waits without a bound but the
# reader waiting for the first byte of the next message.
import asyncio
from micropython import const

from onboard.errors import ProtocolError, Timeout

GET = const(1)
POST = const(2)
PUT = const(3)
DELETE = const(4)
OBSERVE = const(6)
URI_PATH = const(11)
CONTENT_FORMAT = const(12)
URI_QUERY = const(15)
ACCEPT = const(17)
_CSM = const(0xE1)
_PING = const(0xE2)
_PONG = const(0xE3)
_ABORT = const(0xE5)


def _err(why):
    return ValueError("coap: " + why)


def _ext(n):
    # (nibble, extension bytes) for a length or an option delta
    if n < 13:
        return n, b""
    if n < 269:
        return 13, bytes((n - 13,))
    if n < 65805:
        return 14, (n - 269).to_bytes(2, "big")
    return 15, (n - 65805).to_bytes(4, "big")


def encode(code, token, opts=(), payload=b""):
    """One message as bytes; opts: (number, bytes, str or int) by number."""
    body = bytearray()
    last = 0
    for n, v in opts:
        if isinstance(v, int):
            v = v.to_bytes(4, "big")
            while v and not v[0]:
                v = v[1:]
        elif isinstance(v, str):
            v = v.encode()
        d, dx = _ext(n - last)
        ln, lx = _ext(len(v))
        if d > 14 or ln > 14 or n < last:
            raise _err("bad option")
        body.append(d << 4 | ln)
        body += dx + lx + v
        last = n
    if payload:
        body.append(0xFF)
        body += payload
    ln, lx = _ext(len(body))
    return bytes((ln << 4 | len(token),)) + lx + bytes((code,)) + token + body


def _size(m, max_size):
    # (index of the code byte, length of options and payload) from the header
    ln = m[0] >> 4
    i = b"\x01\x02\x03\x05"[max(ln - 12, 0)]
    if len(m) <= i:
        raise _err("truncated")
    if ln > 12:
        ln = int.from_bytes(m[1:i], "big") + (13, 269, 65805)[ln - 13]
    if ln > max_size:
        raise _err("too large")
    return i, ln


def parse(m, max_size=65536):
    """(code, token, opts, payload) of one whole message m, or ValueError."""
    if not m:
        raise _err("empty")
    i, ln = _size(m, max_size)
    tkl = m[0] & 15
    end = len(m)
    if tkl > 8 or end != i + 1 + tkl + ln:
        raise _err("bad length")
    code = m[i]
    i += 1 + tkl
    token = bytes(m[i - tkl : i])
    opts = []
    n = 0
    while i < end:
        b = m[i]
        i += 1
        if b == 0xFF:
            if i == end:
                raise _err("empty payload")
            break
        x = [b >> 4, b & 15]
        for k in (0, 1):
            w = x[k] - 12
            if w > 0:
                if w > 2 or i + w > end:
                    raise _err("bad option")
                x[k] = int.from_bytes(m[i : i + w], "big") + (13, 269)[w - 1]
                i += w
        n += x[0]
        i += x[1]
        if i > end:
            raise _err("truncated")
        opts.append((n, bytes(m[i - x[1] : i])))
    return code, token, opts, bytes(m[i:end])


def opt(opts, number, default=None):
    for n, v in opts:
        if n == number:
            return v
    return default


def path(opts):
    return "/".join(v.decode() for n, v in opts if n == URI_PATH)


async def _wait(aw, ms):
    try:
        return await asyncio.wait_for(aw, ms / 1000)
    except asyncio.TimeoutError:
        raise Timeout("coap: timed out") from None


class Conn:
    def __init__(self, reader, writer, handler=None, max_size=2048):
        self.r, self.w = reader, writer
        self.handler = handler
        self.max_size = max_size
        self.peer_max = 1152  # RFC 8323's default until the peer's CSM
        self.waits = {}  # token -> [Event, message or None]
        self.tok = 0
        self.task = None
        self.csm = asyncio.Event()

    async def start(self, timeout_ms=10000):
        await self.send(_CSM, b"", ((2, self.max_size),))
        self.task = asyncio.create_task(self._read(timeout_ms))
        await _wait(self.csm.wait(), timeout_ms)
        if not self.w:
            raise ProtocolError("coap: connection closed")
        return self

    async def send(self, code, token, opts=(), payload=b"", timeout_ms=10000):
        m = encode(code, token, opts, payload)
        if len(m) > self.peer_max:
            raise _err("message too large for the peer")
        self.w.write(m)
        await _wait(self.w.drain(), timeout_ms)

    async def _read(self, timeout_ms):
        try:
            while True:
                m = await self.r.readexactly(1)
                m += await _wait(self.r.readexactly(b"\x01\x02\x03\x05"[max(m[0] // 16 - 12, 0)]),
                                 timeout_ms)
                i, ln = _size(m, self.max_size)
                m += await _wait(self.r.readexactly(i + 1 + (m[0] & 15) + ln - len(m)), timeout_ms)
                code, token, opts, payload = parse(m, self.max_size)
                if code == _CSM:
                    self.peer_max = int.from_bytes(opt(opts, 2, b"\x04\x80"), "big")
                    self.csm.set()
                elif code == _PING:
                    await self.send(_PONG, token)
                elif code > _PONG:  # Release, Abort
                    break
                elif code > 31:  # a response (or a Pong)
                    w = self.waits.get(token)
                    if w:
                        w[1] = (code, opts, payload)
                        w[0].set()
                elif code:  # a request
                    res = (0x84, (), b"")  # 4.04 without a handler
                    if self.handler:
                        try:
                            res = self.handler(code, opts, payload)
                            if hasattr(res, "send"):
                                res = await res
                        except Exception:
                            res = (0xA0, (), b"")  # 5.00
                    await self.send(res[0], token, res[1], res[2])
        except ValueError as e:
            try:
                await self.send(_ABORT, b"", (), str(e).encode())
            except Exception:
                pass
        except Exception:
            pass
        finally:
            self.close()

    async def request(self, code, path, payload=b"", query=(), content_format=None,
                      accept=None, observe=None, timeout_ms=10000, token=None):
        opts = [] if observe is None else [(OBSERVE, observe)]
        opts += [(URI_PATH, p) for p in path.split("/") if p]
        if content_format is not None:
            opts.append((CONTENT_FORMAT, content_format))
        opts += [(URI_QUERY, q) for q in query]
        if accept is not None:
            opts.append((ACCEPT, accept))
        return await self._ask(code, opts, payload, timeout_ms, token)

    async def ping(self, timeout_ms=10000):
        await self._ask(_PING, (), b"", timeout_ms)

    async def _ask(self, code, opts, payload, timeout_ms, token=None):
        if not self.w:
            raise ProtocolError("coap: connection closed")
        if token is None:
            self.tok = (self.tok + 1) & 0xFFFFFFFF
            token = self.tok.to_bytes(4, "big")
        w = self.waits[token] = [asyncio.Event(), None]
        try:
            await self.send(code, token, opts, payload, timeout_ms)
            await _wait(w[0].wait(), timeout_ms)
        finally:
            self.waits.pop(token, None)
        if not w[1]:
            raise ProtocolError("coap: connection closed")
        return w[1]

    def close(self):
        w, self.w = self.w, None
        if w:
            w.close()
        for x in self.waits.values():
            x[0].set()  # woken with no message: closed
        self.csm.set()
        t, self.task = self.task, None
        if t and t is not asyncio.current_task():
            t.cancel()


async def connect(host, port, ssl=None, handler=None, timeout_ms=10000, max_size=2048):
    r, w = await _wait(asyncio.open_connection(host, port, ssl=ssl, server_hostname=host)
                       if ssl else asyncio.open_connection(host, port), timeout_ms)
    c = Conn(r, w, handler, max_size)
    try:
        return await c.start(timeout_ms)
    except BaseException:
        c.close()
        raise
