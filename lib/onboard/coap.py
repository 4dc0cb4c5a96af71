# CoAP over TCP and TLS (RFC 8323) on asyncio streams, client and server
# roles on one connection.
#
#   conn = await coap.connect(host, port, ssl=None, handler=None, timeout_ms=10000)
#       (ssl: an SSLContext, e.g. onboard.net.tls_context(ca), for coaps+tcp)
#   conn = await coap.Conn(reader, writer, handler, max_size=2048).start(timeout_ms)
#       (e.g. a connection asyncio.start_server accepted: the server role)
#   code, opts, payload = await conn.request(code, path, payload=b"", query=(),
#       content_format=None, accept=None, observe=None, timeout_ms=10000)
#   await conn.request(0xE2, "")      a Ping, answered by a Pong (0xE3)
#   await conn.send(code, token, opts=(), payload=b"", timeout_ms=10000)
#       any message (an Observe notification on a request's token)
#   conn.close()                      also what a failed start() does
# start() sends our CSM (Max-Message-Size = max_size) and waits for the
# peer's (conn.peer_max: what we may send, 1152 until it came). A reader task
# then answers Pings, matches responses to requests by token and calls
# handler(code, opts, payload) for each request (a plain function, run in the
# reader task: it must not wait; conn.last is the request's token); the
# (code, opts, payload) it returns is
# sent back with the request's token (4.04 without a handler, 5.00 when it
# raises).
# Codes are bytes as on the wire, class << 5 | detail: GET 1, POST 2, PUT 3,
# DELETE 4, 2.04 = 0x44, 2.05 = 0x45, 4.01 = 0x81. Options: Observe 6,
# Uri-Path 11, Content-Format 12, Uri-Query 15, Accept 17. opts is a list of
# (number, value), values bytes as received; sending, in ascending number
# order, a value bytes, str, int (a uint) or None (left out).
# opt(opts, n) is the first value of option n (or None).
# Errors: a malformed or oversized message -> ValueError("coap: <why>") from
# parse() and encode(), and the connection closed when one arrives; no answer
# in time -> onboard.errors.Timeout; the connection lost -> ProtocolError.
# Nothing waits unbounded but the reader for the first byte of a message.
import asyncio
from micropython import const

from onboard.errors import ProtocolError, Timeout

_CSM = const(0xE1)
_PING = const(0xE2)
_PONG = const(0xE3)


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
        if v is None:  # (an option not given)
            continue
        if isinstance(v, int):
            if v >> 32:  # (a uint option takes 4 bytes at most; never negative)
                raise _err("bad option")
            v = v.to_bytes(4, "big").lstrip(b"\0")
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
    ln = m[0] >> 4 if m else 15  # (nothing: truncated)
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
                raise _err("bad option")  # (a payload marker, no payload)
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


def opt(opts, number):
    for n, v in opts:
        if n == number:
            return v


async def _wait(aw, ms):
    try:
        return await asyncio.wait_for(aw, ms / 1000)
    except asyncio.TimeoutError:
        raise Timeout("coap: timed out") from None


class Conn:
    tok = 0
    task = None

    def __init__(self, reader, writer, handler=None, max_size=2048):
        self.r, self.w = reader, writer
        self.handler = handler
        self.max_size = max_size
        self.peer_max = 1152  # RFC 8323's default until the peer's CSM
        self.waits = {}  # token (the CSM: _CSM) -> [Event, message or None]

    async def start(self, timeout_ms=10000):
        try:
            w = self.waits[_CSM] = [asyncio.Event(), None]
            await self.send(_CSM, b"", ((2, self.max_size),))
            self.task = asyncio.create_task(self._read(timeout_ms))
            await _wait(w[0].wait(), timeout_ms)
            if w[1]:
                return self
            raise ProtocolError("coap: closed")
        except BaseException:
            self.close()
            raise
        finally:
            self.waits.pop(_CSM, None)  # (a later CSM of the peer waits for nothing)

    async def send(self, code, token, opts=(), payload=b"", timeout_ms=10000):
        m = encode(code, token, opts, payload)
        if len(m) > self.peer_max:
            raise _err("too large")
        self.w.write(m)
        await _wait(self.w.drain(), timeout_ms)

    async def _read(self, timeout_ms):
        # until the connection closes, fails or sends something malformed
        try:
            while True:
                m = await self.r.readexactly(1)
                m += await _wait(self.r.readexactly(b"\x01\x02\x03\x05"[max(m[0] // 16 - 12, 0)]),
                                 timeout_ms)
                # the token, options and payload (refused when over max_size)
                m += await _wait(self.r.readexactly((m[0] & 15) + _size(m, self.max_size)[1]),
                                 timeout_ms)
                code, token, opts, payload = parse(m, self.max_size)
                if code == _CSM:
                    self.peer_max = int.from_bytes(opt(opts, 2) or b"\x04\x80", "big")
                    token = _CSM  # (start() waits for it)
                if code == _PING:
                    await self.send(_PONG, token)
                elif code > 31:  # a response or a Pong (after Release or Abort the peer closes)
                    w = self.waits.get(token)
                    if w:
                        w[1] = (code, opts, payload)
                        w[0].set()
                elif code:  # a request (its token in self.last for the handler)
                    self.last = token
                    try:  # 4.04 without a handler, 5.00 when it fails
                        res = self.handler(code, opts, payload) if self.handler else (0x84, (), b"")
                    except Exception:
                        res = (0xA0, (), b"")
                    await self.send(res[0], token, res[1], res[2])
        except Exception:
            pass
        finally:
            self.task = None  # (not cancelled: ending)
            self.close()

    async def request(self, code, path, payload=b"", query=(), content_format=None,
                      accept=None, observe=None, timeout_ms=10000):
        opts = [(6, observe)]
        for p in path.split("/"):
            opts.append((11, p or None))
        opts.append((12, content_format))
        for q in query:
            opts.append((15, q))
        opts.append((17, accept))
        self.tok += 1
        token = self.tok.to_bytes(4, "big")
        w = self.waits[token] = [asyncio.Event(), None]
        try:
            if self.w:  # (else: closed, below)
                await self.send(code, token, opts, payload, timeout_ms)
                await _wait(w[0].wait(), timeout_ms)
        finally:
            self.waits.pop(token)
        if not w[1]:
            raise ProtocolError("coap: closed")
        return w[1]

    def close(self):
        w, self.w = self.w, None
        if w:
            w.s.close()  # pyright: ignore  (MicroPython's Stream.close() does nothing)
        for x in self.waits.values():
            x[0].set()  # woken with no message: closed
        t, self.task = self.task, None
        if t:
            t.cancel()


async def connect(host, port, ssl=None, handler=None, timeout_ms=10000):
    s = (await _wait(asyncio.open_connection(host, port), timeout_ms))[0]
    raw = s.s
    try:
        if ssl:
            # wrapped here, not by open_connection: a TLS socket whose handshake
            # (in start's first send) fails lets go of its plain socket unclosed
            s.s = ssl.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
        return await Conn(s, s, handler).start(timeout_ms)
    except BaseException:
        raw.close()
        raise
