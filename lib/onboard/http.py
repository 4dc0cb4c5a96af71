# Small HTTP/1.1 client with urequests' names. HTTPS verifies the server's
# certificate and host name against `ca` unless insecure=True is explicit.
# One deadline of `timeout` seconds bounds the exchange (connect, TLS, send,
# every read), so a server that trickles cannot hold the device. request()
# blocks; arequest() is the same code on asyncio streams.
import socket
import time
from micropython import const

from onboard.errors import NetError, ProtocolError, fail, wrap

_MAX_HEAD = const(4096)
_CHUNK = const(512)
_MAX_REDIRECTS = const(3)
_ETIMEDOUT = const(110)


class Response:
    def __init__(self, status_code, headers, content):
        self.status_code = status_code
        self.headers = headers  # lower-case names
        self.content = content

    def __repr__(self):
        return "<Response %d>" % self.status_code

    @property
    def text(self):
        return self.content.decode()

    def json(self):
        import json

        return json.loads(self.content)

    def close(self):
        pass  # the body is read and the socket closed before request() returns


def _left(deadline):
    ms = time.ticks_diff(deadline, time.ticks_ms())
    if ms <= 0:
        raise OSError(_ETIMEDOUT)
    return ms / 1000


class _Conn:
    # Buffered reading over recv(); subclasses supply connect/send/recv/close.
    eof = False

    def __init__(self):
        self.buf = bytearray()  # grows and shrinks in place

    async def fill(self, deadline):
        part = await self.recv(deadline)  # pyright: ignore  (each subclass has recv)
        if part:
            self.buf += part
        else:
            self.eof = True
        return part

    def cut(self, n, skip=0):
        # the first n bytes, dropping them and `skip` more from the buffer
        part = bytes(self.buf[:n])
        self.buf[: n + skip] = b""  # in place (MicroPython has no del on slices)
        return part

    async def upto(self, sep, deadline, limit):
        # bytes before sep (consumed with it); ValueError past limit or at EOF
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                return self.cut(i, len(sep))
            if len(self.buf) > limit or not await self.fill(deadline):
                raise ValueError

    async def take(self, n, deadline):
        while len(self.buf) < n:
            if not await self.fill(deadline):
                raise EOFError
        return self.cut(n)


class _Blocking(_Conn):
    # A socket whose timeout is set from the deadline before every call. The
    # coroutines never suspend, so request() drives them with one send().
    raw = sock = None

    async def connect(self, host, port, ctx, deadline):
        # getaddrinfo cannot be bounded on MicroPython; lwIP's DNS timeout applies
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        self.raw = self.sock = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
        self.raw.settimeout(_left(deadline))
        self.raw.connect(addr[-1])
        self.ctx, self.host = ctx, host

    async def send(self, data, deadline):
        self.raw.settimeout(_left(deadline))
        if self.ctx:
            self.sock = self.ctx.wrap_socket(self.raw, server_hostname=self.host)
        self.sock.write(data)

    async def recv(self, deadline):
        self.raw.settimeout(_left(deadline))
        # recv returns what has arrived; readinto would wait to fill its buffer
        part = self.sock.recv(_CHUNK)
        if part is None:  # the TLS layer would block: the timeout passed
            raise OSError(_ETIMEDOUT)
        return part

    def close(self):
        for s in (self.sock, self.raw):
            if s:
                s.close()


class _Streams(_Conn):
    # asyncio streams. With TLS the handshake runs on the first drain, so
    # nothing is sent before the certificate verifies.
    writer = None

    async def _within(self, aw, deadline):
        import asyncio

        try:
            return await asyncio.wait_for(aw, _left(deadline))
        except asyncio.TimeoutError:
            raise OSError(_ETIMEDOUT) from None

    async def connect(self, host, port, ctx, deadline):
        import asyncio

        self.reader, self.writer = await self._within(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host), deadline)

    async def send(self, data, deadline):
        self.writer.write(data)
        await self._within(self.writer.drain(), deadline)

    async def recv(self, deadline):
        return await self._within(self.reader.read(_CHUNK), deadline)

    def close(self):
        if self.writer:
            self.writer.close()


def _unsafe(text):
    # CR, LF, space or control characters would split or bend the request
    for c in text:
        if c <= " ":
            return True
    return False


def _split(url):
    # -> (https?, host, port, path); errors name the field, not the URL
    scheme, sep, rest = url.partition("://")
    hostport, slash, path = rest.partition("/")
    host, colon, port = hostport.partition(":")
    tls = scheme == "https"
    try:
        port = int(port) if colon else (443 if tls else 80)
    except ValueError:
        port = 0
    if not sep or scheme not in ("http", "https") or not host or not 0 < port < 65536 \
            or _unsafe(url):
        raise ValueError("url: malformed")
    return tls, host, port, slash + path


def der(cert):
    """A certificate as DER; PEM is decoded (MicroPython's mbedTLS parses DER only)."""
    i = cert.find(b"-----BEGIN CERTIFICATE-----")
    if i < 0:
        return cert
    from binascii import a2b_base64

    return a2b_base64(cert[i + 27 : cert.find(b"-----END", i)])


def tls_context(ca, insecure=False):
    """An SSLContext verifying against ca (path, PEM or DER), for reuse."""
    return _context(ca, insecure)


def _context(ca, insecure):
    import tls

    if hasattr(ca, "wrap_socket"):
        return ca  # a ready SSLContext, reused across requests
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    if insecure:
        ctx.verify_mode = tls.CERT_NONE  # pyright: ignore  (missing from the stubs)
        return ctx
    if ca is None:
        raise ValueError("ca: https needs a CA certificate (or insecure=True)")
    if isinstance(ca, str):
        with open(ca, "rb") as f:
            ca = f.read()
    ctx.verify_mode = tls.CERT_REQUIRED  # pyright: ignore  (missing from the stubs)
    ctx.load_verify_locations(der(ca))
    return ctx


def _big(host, max_body):
    return fail(ProtocolError, host, "body", "larger than max_body %d" % max_body)


async def _reply(c, host, max_body, head_only, deadline):
    phase = "status"
    try:
        lines = (await c.upto(b"\r\n\r\n", deadline, _MAX_HEAD)).decode().split("\r\n")
        parts = lines[0].split(" ")
        status = int(parts[1])
        if not parts[0].startswith("HTTP/1.") or not 100 <= status <= 599:
            raise ValueError
        phase = "headers"
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError
            headers[name.strip().lower()] = value.strip()
        del lines
        phase = "body"
        body = b""
        if head_only or status in (204, 304) or status < 200:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                n = int((await c.upto(b"\r\n", deadline, 64)).split(b";")[0], 16)
                if len(body) + n > max_body:
                    raise _big(host, max_body)
                if not n:
                    break
                body += await c.take(n, deadline)
                if await c.take(2, deadline) != b"\r\n":
                    raise ValueError
            while await c.upto(b"\r\n", deadline, 256):
                pass  # trailers
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if n > max_body:
                raise _big(host, max_body)
            body = await c.take(n, deadline)
        else:
            while not c.eof:
                if len(c.buf) > max_body:
                    raise _big(host, max_body)
                await c.fill(deadline)
            body = bytes(c.buf)
        return Response(status, headers, body)
    except (ValueError, UnicodeError, EOFError, IndexError):
        why = "malformed"
        if c.eof:
            why = "connection closed before a reply" if phase == "status" else "truncated"
        raise fail(ProtocolError, host, phase, why) from None


async def _request(io, method, url, json, data, headers, timeout, ca, insecure, max_body):
    if json is not None:
        import json as _json

        data = _json.dumps(json)
    body = data.encode() if isinstance(data, str) else data
    for _ in range(_MAX_REDIRECTS + 1):
        tls, host, port, path = _split(url)
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (method, path or "/", host)
        if json is not None:
            head += "Content-Type: application/json\r\n"
        if body is not None:
            head += "Content-Length: %d\r\n" % len(body)
        for k, v in (headers or {}).items():
            v = str(v)
            if _unsafe(k) or "\r" in v or "\n" in v:
                raise ValueError("headers: %s: line break or control character" % k.strip())
            head += "%s: %s\r\n" % (k, v)
        if _unsafe(method):
            raise ValueError("method: malformed")
        ctx = _context(ca, insecure) if tls else None
        deadline = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        phase = "connect"
        conn = io()
        try:
            await conn.connect(host, port, ctx, deadline)
            phase = "tls" if ctx else "send"
            head = (head + "\r\n").encode()
            await conn.send(head + body if body else head, deadline)
            phase = "reply"
            resp = await _reply(conn, host, max_body, method == "HEAD", deadline)
        except (OSError, ValueError) as e:
            raise wrap(e, host, phase) from None
        finally:
            conn.close()
        loc = resp.headers.get("location")
        if resp.status_code not in (301, 302, 303, 307, 308) or not loc:
            return resp
        if loc.startswith("/"):
            loc = url[: len(url) - len(path)] + loc
        new = _split(loc)
        if new[0] != tls:
            raise fail(NetError, host, "redirect", "to another scheme refused")
        if new[1] != host:
            headers = None  # credentials in headers stay with the host they were meant for
        if resp.status_code == 303 or (resp.status_code < 303 and method == "POST"):
            method, body, json = "GET", None, None
        url = loc
    raise fail(NetError, host, "redirect", "more than %d redirects" % _MAX_REDIRECTS)


def request(method, url, *, json=None, data=None, headers=None, timeout=10, ca=None,
            insecure=False, max_body=16384):
    """One HTTP request; returns a Response with the whole body read."""
    coro = _request(_Blocking, method, url, json, data, headers, timeout, ca, insecure, max_body)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError  # unreachable: the blocking connection never suspends


async def arequest(method, url, *, json=None, data=None, headers=None, timeout=10, ca=None,
                   insecure=False, max_body=16384):
    """request() as a coroutine: the event loop keeps running meanwhile."""
    return await _request(_Streams, method, url, json, data, headers, timeout, ca, insecure,
                          max_body)


def get(url, **kw):
    return request("GET", url, **kw)


def post(url, **kw):
    return request("POST", url, **kw)


def put(url, **kw):
    return request("PUT", url, **kw)
