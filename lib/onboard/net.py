# The transport onboard.ahttp and onboard.amqtt share (the runtime's): name
# lookup, a TCP (and TLS) connection on asyncio streams with buffered reads,
# every call bounded by a deadline in ticks. The blocking clients
# (onboard.http, onboard.mqtt) have their own socket code and do not load this.
# (Few functions on purpose: each costs RAM when the module is loaded.)
import asyncio
import socket
import time
from micropython import const

_CHUNK = const(256)
_ETIMEDOUT = const(110)


def deadline(seconds):
    return time.ticks_add(time.ticks_ms(), int(seconds * 1000))


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
    """One connection on asyncio streams, with buffered reads."""
    s = None  # the asyncio stream

    async def _io(self, deadline, aw):
        # the awaitable aw, bounded by the deadline
        try:
            return await asyncio.wait_for(
                aw, max(time.ticks_diff(deadline, time.ticks_ms()), 0) / 1000)
        except asyncio.TimeoutError:
            raise OSError(_ETIMEDOUT) from None

    async def connect(self, host, port, ctx, deadline):
        self.buf = bytearray()  # grows and shrinks in place
        try:
            addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        except (OSError, IndexError):
            # (a lookup cannot be bounded on MicroPython: lwIP's DNS timeout
            # applies); the error kinds are loaded when one is raised
            from onboard.errors import DNSError, fail

            raise fail(DNSError, host, "dns", "name lookup failed") from None
        sa = addr[-1]  # the address just resolved (a tuple on lwIP): no second lookup
        s = self.s = (await self._io(deadline, asyncio.open_connection(  # pyright: ignore
            sa[0] if isinstance(sa, tuple) else host, port)))[0]
        self.raw = s.s
        if ctx:
            # wrapped here, not by open_connection: a TLS socket whose handshake
            # fails lets go of its plain socket unclosed, so close() keeps it
            s.s = ctx.wrap_socket(s.s, server_hostname=host, do_handshake_on_connect=False)

    async def send(self, deadline, *parts):
        for p in parts:
            self.s.write(p)  # pyright: ignore
        await self._io(deadline, self.s.drain())  # pyright: ignore

    async def fill(self, deadline, want=_CHUNK):
        """Append what arrives before the deadline (up to want bytes, at most
        _CHUNK: no bigger allocation) to buf; b"" at EOF."""
        want = min(want, _CHUNK)
        # what has arrived, from the stream's socket without waiting (a
        # wait_for at its deadline would not even start the read)
        part = self.s.s.read(want)  # pyright: ignore
        if part is None:
            part = await self._io(deadline, self.s.read(want))  # pyright: ignore
        if part:
            self.buf += part
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
        # the stream's own socket: Stream.close() only marks the stream
        s = self.s and self.s.s  # pyright: ignore
        if s:
            try:
                if bye:
                    s.write(bye)  # closing cannot wait for a drain
            except Exception:
                pass
            s.close()  # (a TLS socket kept its mbedTLS buffers until collected)
            self.raw.close()  # the plain socket, if a failed handshake let go of it
        self.s = None
