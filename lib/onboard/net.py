# The transport onboard.http and onboard.mqtt share: name lookup, a TCP (and
# TLS) connection with buffered reads, every call bounded by a deadline in
# ticks. The protocol code is coroutines: over Blocking they never suspend and
# run() drives them to the end in one step; over Streams (asyncio) the event
# loop keeps running meanwhile. Either way the TLS handshake happens on the
# first send, so nothing is sent before the certificate verifies.
import socket
import time
from micropython import const

from onboard.errors import DNSError, fail

_CHUNK = const(512)
_ETIMEDOUT = const(110)


def deadline(ms):
    return time.ticks_add(time.ticks_ms(), int(ms))


def _ms(deadline):
    return time.ticks_diff(deadline, time.ticks_ms())


def resolve(host, port):
    """getaddrinfo's first TCP address; DNSError when the name does not resolve.
    (MicroPython cannot bound a lookup: lwIP's own DNS timeout applies.)"""
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    except (OSError, IndexError):
        raise fail(DNSError, host, "dns", "name lookup failed") from None


def run(coro):
    """The result of a coroutine that never suspends (one on a blocking Conn)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError  # it suspended: a blocking call on an asyncio connection


def tls_context(ca, insecure=False):
    """An SSLContext trusting every certificate of ca (a path, or PEM or DER
    bytes, one certificate or a bundle); an SSLContext is returned as it is."""
    import tls

    if hasattr(ca, "wrap_socket"):
        return ca
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
    # mbedTLS here parses one DER certificate per call and adds it to those
    # trusted, so a PEM bundle is loaded one certificate at a time
    pems = ca.split(b"-----BEGIN CERTIFICATE-----")
    if len(pems) < 2:
        ctx.load_verify_locations(ca)  # DER: one certificate
    from binascii import a2b_base64

    for p in pems[1:]:
        ctx.load_verify_locations(a2b_base64(p[: p.find(b"-----")]))
    return ctx


class Conn:
    """A connection with buffered reads. aio: on asyncio streams, else on a
    blocking socket whose timeout is set from the deadline before every call."""
    eof = False
    s = ctx = None  # the socket (TLS once the handshake ran) or the asyncio stream

    def __init__(self, aio=False):
        self.aio = aio
        self.buf = bytearray()  # grows and shrinks in place

    async def _wait(self, aw, deadline):
        import asyncio

        try:
            return await asyncio.wait_for(aw, max(_ms(deadline), 0) / 1000)
        except asyncio.TimeoutError:
            raise OSError(_ETIMEDOUT) from None

    def _timeout(self, deadline):
        ms = _ms(deadline)
        if ms <= 0:
            raise OSError(_ETIMEDOUT)
        self.raw.settimeout(ms / 1000)

    async def connect(self, host, port, ctx, deadline):
        addr = resolve(host, port)
        if self.aio:
            import asyncio

            sa = addr[-1]  # the address just resolved (a tuple on lwIP): no second lookup
            self.s = (await self._wait(asyncio.open_connection(
                sa[0] if isinstance(sa, tuple) else host, port, ssl=ctx, server_hostname=host),
                deadline))[0]
            return
        self.raw = self.s = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
        self._timeout(deadline)
        self.raw.connect(addr[-1])
        self.ctx, self.host = ctx, host

    async def send(self, deadline, *parts):
        if not self.aio:
            self._timeout(deadline)
            if self.ctx:
                self.s = self.ctx.wrap_socket(self.raw, server_hostname=self.host)
                self.ctx = None
        for p in parts:
            self.s.write(p)  # pyright: ignore
        if self.aio:
            await self._wait(self.s.drain(), deadline)  # pyright: ignore

    async def recv(self, deadline):
        if self.aio:
            return await self._wait(self.s.read(_CHUNK), deadline)  # pyright: ignore
        # past the deadline one read still takes what has already arrived
        self.raw.settimeout(max(_ms(deadline), 0) / 1000)
        # recv returns what has arrived; readinto would wait to fill its buffer
        part = self.s.recv(_CHUNK)  # pyright: ignore
        if part is None:  # the TLS layer would block: the timeout passed
            raise OSError(_ETIMEDOUT)
        return part

    def close(self, bye=None):
        """Close; bye: a last packet sent first, best effort (MQTT's DISCONNECT)."""
        s = self.s
        if s:
            try:
                if bye and not self.ctx:
                    # a stream's socket itself: closing cannot wait for a drain
                    getattr(s, "s", s).write(bye)
            except Exception:
                pass
            s.close()
        self.s = None

    async def fill(self, deadline):
        part = await self.recv(deadline)
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

    async def need(self, n, deadline):
        # at least n bytes buffered; EOFError when the peer closes first
        while len(self.buf) < n:
            if not await self.fill(deadline):
                raise EOFError

    async def take(self, n, deadline):
        await self.need(n, deadline)
        return self.cut(n)
