# The transport onboard.ahttp and onboard.mqtt share: name lookup, a TCP (and
# TLS) connection with buffered reads, every call bounded by a deadline in
# ticks. The protocol code is coroutines: on a blocking Conn they never
# suspend and run() drives them to the end in one step; on an asyncio Conn
# the event loop keeps running meanwhile. Either way the TLS handshake runs on
# the first send, so nothing is sent before the certificate verifies.
# (Few functions on purpose: each costs RAM when the module is loaded.)
import socket
import time
from micropython import const

_CHUNK = const(256)
_ETIMEDOUT = const(110)


def deadline(seconds):
    return time.ticks_add(time.ticks_ms(), int(seconds * 1000))


def run(coro):
    """The result of a coroutine that never suspends (one on a blocking Conn)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("blocking call on an asyncio connection")  # it suspended


def tls_context(ca, insecure=False):
    """onboard.ca.context: an SSLContext trusting ca (a path, PEM or DER).
    onboard.ca (a plain connection does not load it) is let go afterwards,
    unless it was loaded before: the context holds the certificates."""
    import sys

    kept = "onboard.ca" in sys.modules
    import onboard.ca

    ctx = onboard.ca.context(ca, insecure)
    if not kept:
        del sys.modules["onboard.ca"], onboard.ca
    return ctx


class Conn:
    """One connection with buffered reads: on asyncio streams (aio) or on a
    blocking socket whose timeout is set from the deadline before each call."""
    eof = False
    s = ctx = None  # the socket (TLS once the handshake ran), or the asyncio stream

    async def _io(self, deadline, aw=None, poll=False):
        # aw: an asyncio awaitable, bounded by the deadline; else the blocking
        # socket's timeout set to what is left (poll: one more read past it)
        ms = time.ticks_diff(deadline, time.ticks_ms())
        if aw:
            import asyncio

            try:
                return await asyncio.wait_for(aw, max(ms, 0) / 1000)
            except asyncio.TimeoutError:
                raise OSError(_ETIMEDOUT) from None
        if ms <= 0 and not poll:
            raise OSError(_ETIMEDOUT)
        self.raw.settimeout(max(ms, 0) / 1000)

    async def connect(self, host, port, ctx, deadline, aio=False):
        self.aio = aio
        self.buf = bytearray()  # grows and shrinks in place
        try:
            addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        except (OSError, IndexError):
            # (a lookup cannot be bounded on MicroPython: lwIP's DNS timeout
            # applies); the error kinds are loaded when one is raised
            from onboard.errors import DNSError, fail

            raise fail(DNSError, host, "dns", "name lookup failed") from None
        if aio:
            import asyncio

            sa = addr[-1]  # the address just resolved (a tuple on lwIP): no second lookup
            self.s = (await self._io(deadline, asyncio.open_connection(  # pyright: ignore
                sa[0] if isinstance(sa, tuple) else host, port, ssl=ctx, server_hostname=host)))[0]
            return
        self.raw = self.s = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
        await self._io(deadline)
        self.raw.connect(addr[-1])
        self.ctx, self.host = ctx, host

    async def send(self, deadline, *parts):
        if not self.aio:
            await self._io(deadline)
            if self.ctx:
                self.s = self.ctx.wrap_socket(self.raw, server_hostname=self.host)
                self.ctx = None
        for p in parts:
            self.s.write(p)  # pyright: ignore
        if self.aio:
            await self._io(deadline, self.s.drain())  # pyright: ignore

    async def fill(self, deadline, want=_CHUNK):
        """Append what arrives before the deadline (up to want bytes, at most
        _CHUNK: no bigger allocation) to buf; b"" at EOF."""
        want = min(want, _CHUNK)
        if self.aio:
            # what has arrived, from the stream's socket without waiting (a
            # wait_for at its deadline would not even start the read)
            part = self.s.s.read(want)  # pyright: ignore
            if part is None:
                part = await self._io(deadline, self.s.read(want))  # pyright: ignore
        else:
            await self._io(deadline, None, True)
            # recv returns what has arrived; readinto would wait to fill its buffer
            part = self.s.recv(want)  # pyright: ignore
            if part is None:  # the TLS layer would block: the timeout passed
                raise OSError(_ETIMEDOUT)
        if part:
            self.buf += part
        else:
            self.eof = True
        return part

    async def take(self, n, deadline, skip=0):
        """The next n bytes, dropping `skip` more after them; EOFError when the
        peer closes first."""
        while len(self.buf) < n + skip:
            if not await self.fill(deadline, n + skip - len(self.buf)):
                raise EOFError
        part = bytes(memoryview(self.buf)[:n])  # one copy, not two
        self.buf[: n + skip] = b""  # in place (MicroPython has no del on slices)
        return part

    def close(self, bye=None):
        """Close; bye: a last packet sent first, best effort (MQTT's DISCONNECT)."""
        # an asyncio stream's own socket: Stream.close() only marks the stream
        s = self.s and getattr(self.s, "s", self.s)
        if s:
            try:
                if bye and not self.ctx:
                    s.write(bye)  # closing cannot wait for a drain
            except Exception:
                pass
            s.close()  # (a TLS socket kept its mbedTLS buffers until collected)
        self.s = None
