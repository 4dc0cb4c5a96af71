# MQTT 3.1.1 client with umqtt.simple's interface and meaning, except:
# the timeout bounds every operation (umqtt.simple loses it after the first
# wait_msg), a QoS 1 publish waits for its PUBACK only up to the timeout,
# packets from the broker are bounded and checked (never assert, never an
# unbounded allocation), and wait_msg()/check_msg() send the keepalive ping
# when one is due and notice a missing PINGRESP.
# One code path: the a* coroutines run on onboard.net's transport; the
# blocking methods drive them over a blocking socket (connect()), the runtime
# awaits them on asyncio streams (aconnect()) so its event loop never stops.
# (Few functions and names on purpose: each costs RAM once loaded.)
import time
from micropython import const

from onboard import net
from onboard.errors import TIMEOUT_ERRNOS, NetError, ProtocolError, Timeout, fail, wrap

_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBACK = const(0x90)


class MQTTException(Exception):
    """The broker refused: args[0] is the CONNACK (or SUBACK) code."""


def _bytes(s):
    return s.encode() if isinstance(s, str) else s


def _field(s):
    # a string field: its length (2 bytes) and its bytes
    s = _bytes(s)
    return len(s).to_bytes(2, "big") + s


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None, timeout=10, max_packet=4096):
        self.client_id = _bytes(client_id)
        self.server = server
        self.port = port or (8883 if ssl else 1883)
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.timeout = timeout
        self.max_packet = max_packet
        self._c = self.cb = self.lw_topic = self._pong_due = None  # _c: onboard.net's Conn
        self.pid = self._sent = 0  # _sent: ticks of the last packet sent
        self._blocking = False

    def __repr__(self):
        return "<MQTTClient %s:%d>" % (self.server, self.port)

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.lw_topic = _bytes(topic)
        self.lw_msg = _bytes(msg)
        self.lw_qos = qos
        self.lw_retain = retain

    def __getattr__(self, name):
        # umqtt.simple's blocking methods connect(clean_session=True,
        # timeout=None), subscribe, publish, wait_msg, check_msg and ping: each
        # runs its coroutine (aconnect, asubscribe, apublish, await_msg, aping)
        # to the end on a blocking socket. One function instead of six.
        first = ()
        if name == "check_msg":  # wait_msg() without waiting: None when nothing came
            name, first = "wait_msg", (0,)
        if name not in ("connect", "subscribe", "publish", "wait_msg", "ping"):
            raise AttributeError(name)
        f = getattr(self, "a" + name)

        def blocking(*a, **k):
            self._blocking = name == "connect"  # aconnect reads it: a blocking socket
            return net.run(f(*(first + a), **k))
        return blocking

    def _fail(self, e, phase):
        # Any failure leaves the connection unusable: close it, say where.
        self.disconnect(False)
        return e if isinstance(e, MQTTException) else wrap(e, self.server, phase)

    async def _send(self, deadline, op, *parts):
        # one packet: the fixed header (op, the remaining length), then parts
        if not self._c:
            raise fail(NetError, self.server, "write", "not connected")
        n = 0
        for p in parts:
            n += len(p)
        h = bytearray((op,))
        while True:
            h.append(n & 0x7F | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                break
        await self._c.send(deadline, h, *parts)
        self._sent = time.ticks_ms()

    async def _next(self, until, want=None, pid=0, phase="read"):
        # Handle the broker's packets until the ack `want` for pid arrives (its
        # body) or, with want None, one packet (its type; None when none starts
        # before `until`, ticks). _CONNACK: the first packet must be it.
        c = self._c
        while True:
            if not c.buf:
                try:
                    if not await c.fill(until, 2):
                        raise EOFError
                except OSError as e:
                    if e.args and e.args[0] in TIMEOUT_ERRNOS:
                        if want:
                            raise fail(Timeout, self.server, phase, "timed out") from None
                        return None
                    raise
            deadline = net.deadline(self.timeout)
            op = (await c.take(1, deadline))[0]
            n = shift = 0
            while True:  # the remaining length: 7 bits a byte, at most 4 bytes
                b = (await c.take(1, deadline))[0]
                n |= (b & 0x7F) << shift
                if not b & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise fail(ProtocolError, self.server, "read", "bad remaining length")
            if n > self.max_packet:
                raise fail(ProtocolError, self.server, "read", "packet over max_packet")
            body = await c.take(n, deadline)
            if want == _CONNACK:
                if op != want or n != 2:
                    raise fail(ProtocolError, self.server, phase, "no CONNACK")
                return body
            if op == want:
                # PUBACK: packet id; SUBACK: packet id and one return code
                if n < (3 if want == _SUBACK else 2):
                    raise fail(ProtocolError, self.server, phase, "short ack")
                if int.from_bytes(body[:2], "big") == pid:
                    return body
            elif op & 0xF0 == _PUBLISH:
                qos = op >> 1 & 3
                tl = int.from_bytes(body[:2], "big")
                pos = 2 + tl + (2 if qos else 0)
                if qos > 1 or n < pos:
                    raise fail(ProtocolError, self.server, "read", "malformed PUBLISH")
                if self.cb:
                    try:
                        self.cb(body[2 : 2 + tl], body[pos:])
                    except Exception as e:
                        # unacknowledged, so the broker delivers it again; the session stays
                        from onboard import log

                        log.error("mqtt", "callback raised %s", type(e).__name__)
                        qos = 0
                if qos:  # acknowledged once the application has it, as umqtt.simple does
                    await self._send(net.deadline(self.timeout), _PUBACK, body[pos - 2 : pos])
            elif op == 0xD0:  # PINGRESP
                self._pong_due = None
            elif op & 0xF0 not in (_PUBACK, _SUBACK, 0xB0):
                raise fail(ProtocolError, self.server, "read", "unexpected packet %02x" % op)
            if not want:
                return op

    async def aconnect(self, clean_session=True, timeout=None):
        """Connect and log in on asyncio streams (connect(): blocking); raises
        MQTTException(code) when refused, a NetError otherwise. Returns True
        when the broker kept a session. One deadline bounds the whole: lookup,
        TCP, TLS, CONNECT, CONNACK."""
        blocking, self._blocking = self._blocking, False
        if timeout is not None:
            self.timeout = timeout
        self.disconnect(False)
        phase = "connect"
        try:
            deadline = net.deadline(self.timeout)
            self._c = net.Conn()
            await self._c.connect(self.server, self.port, self.ssl, deadline, not blocking)
            flags = 2 if clean_session else 0
            body = _field(self.client_id)
            if self.lw_topic:
                flags |= 0x4 | (self.lw_qos & 3) << 3 | (0x20 if self.lw_retain else 0)
                body += _field(self.lw_topic) + _field(self.lw_msg)
            if self.user is not None:
                flags |= 0x80
                body += _field(self.user)
                if self.pswd is not None:
                    flags |= 0x40
                    body += _field(self.pswd)
            phase = "tls" if self.ssl else "login"  # the handshake runs on the first send
            await self._send(deadline, 0x10, b"\x00\x04MQTT\x04", bytes((flags,)),
                             self.keepalive.to_bytes(2, "big"), body)
            del body
            phase = "login"
            ack: bytes = await self._next(deadline, _CONNACK, 0, phase)  # pyright: ignore
            if ack[1]:
                raise MQTTException(ack[1])
            self._pong_due = None
            return ack[0] & 1
        except Exception as e:
            raise self._fail(e, phase) from None

    def disconnect(self, _bye=True):
        """Send DISCONNECT (best effort) and close; after either connect."""
        if self._c:
            self._c.close(b"\xe0\x00" if _bye else None)  # _bye=False: after a failure
        self._c = None

    async def aping(self):
        try:
            await self._send(net.deadline(self.timeout), 0xC0)
        except Exception as e:
            raise self._fail(e, "ping") from None
        if self._pong_due is None:
            self._pong_due = net.deadline(self.timeout)

    async def _ask(self, phase, op, topic, tail, want):
        # PUBLISH or SUBSCRIBE; with want, wait for its ack (a packet id first)
        try:
            deadline = net.deadline(self.timeout)
            pid = b""
            if want:
                self.pid = self.pid % 65535 + 1
                pid = self.pid.to_bytes(2, "big")
            topic = _field(topic)
            await self._send(deadline, op, pid + topic if want == _SUBACK else topic + pid, tail)
            if want and (await self._next(  # pyright: ignore  (an ack: bytes)
                    deadline, want, self.pid, phase[0] + "uback"))[2:3] == b"\x80":
                raise MQTTException(0x80)
        except Exception as e:
            raise self._fail(e, phase) from None

    async def apublish(self, topic, msg, retain=False, qos=0):
        """publish() after aconnect()."""
        if qos not in (0, 1):
            raise ValueError("qos: 0 or 1")
        await self._ask("publish", _PUBLISH | qos << 1 | retain, topic, _bytes(msg),
                        qos and _PUBACK)

    async def asubscribe(self, topic, qos=0):
        """subscribe() after aconnect(); MQTTException(0x80) when refused."""
        await self._ask("subscribe", 0x82, topic, bytes((qos,)), _SUBACK)

    async def await_msg(self, wait_ms=None):
        """wait_msg() after aconnect(): at most one packet that starts within
        wait_ms (default: the timeout)."""
        try:
            now = time.ticks_ms()
            if self._pong_due is not None and time.ticks_diff(now, self._pong_due) >= 0:
                raise fail(Timeout, self.server, "ping", "no PINGRESP")
            wait = self.timeout * 1000 if wait_ms is None else wait_ms
            if self.keepalive:
                due = self.keepalive * 500 - time.ticks_diff(now, self._sent)
                if due <= 0:
                    await self.aping()
                    due = self.keepalive * 500
                wait = min(wait, due)
            return await self._next(time.ticks_add(now, wait))
        except Exception as e:
            raise self._fail(e, "wait") from None
