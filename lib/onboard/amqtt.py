# onboard.mqtt's client on asyncio, for the runtime: the same settings,
# packets and checks (onboard.mqttbase), on onboard.net's streams with
# deadlines, so the event loop runs on while it waits. MQTTClient(...) as
# mqtt's, with aconnect, asubscribe, apublish, await_msg and aping awaited
# where mqtt's connect, subscribe, publish, wait_msg and ping block;
# disconnect, set_callback and set_last_will as there. (A module of its own:
# a blocking user never loads it, nor onboard.net; the runtime never loads
# the blocking client.)
import time
from micropython import const

from onboard import mqttbase, net

_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)

MQTTException = mqttbase.MQTTException


class MQTTClient(mqttbase.MQTTClient):
    # sock: onboard.net's Conn

    async def _asend(self, stop, code, *args):
        if not self.sock:
            raise OSError(107)  # ENOTCONN
        await self.sock.send(stop, mqttbase.head(code, args), *args)
        self.sent = time.ticks_ms()

    async def _await(self, stop, match=0, pid=b""):
        # mqtt.wait on the stream: the ack `match` for pid (its body) or, with
        # match 0, one packet (its type; None when none starts before stop)
        c = self.sock
        while True:
            if not c.buf:
                try:
                    if not await c.fill(stop, 2):
                        raise EOFError
                except OSError as e:
                    if match or e.errno not in (11, 110, 116):
                        raise
                    return None
            end = net.deadline(self.timeout)  # the rest of the packet
            code = (await c.take(1, end))[0]
            self.heard = time.ticks_ms()
            n = shift = 0
            while True:  # the remaining length: 7 bits a byte, at most 4 bytes
                s = (await c.take(1, end))[0]
                n |= (s & 0x7F) << shift
                if not s & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise mqttbase.fail(self, code)
            if n > self.max_packet:
                raise mqttbase.fail(self, "ProtocolError:packet over max_packet")
            s = mqttbase.parse(self, code, await c.take(n, end), match, pid)
            if s:
                if code == match:
                    return s
                await self._asend(net.deadline(self.timeout), _PUBACK, s)
            if not match:
                return code

    async def aconnect(self, clean_session=True, timeout=None):
        """connect() on asyncio: one deadline bounds lookup, TCP, TLS,
        CONNECT and CONNACK."""
        if timeout is not None:
            self.timeout = timeout
        self.disconnect(b"")
        self.phase = "connect"
        try:
            stop = net.deadline(self.timeout)
            self.sock = net.Conn()
            await self.sock.connect(self.server, self.port, self.ssl, stop)
            self.phase = "tls" if self.ssl else "login"  # the handshake runs on the first send
            await self._asend(stop, 0x10, *mqttbase.start(self, clean_session))
            self.phase = "login"
            return (await self._await(stop, _CONNACK))[0] & 1  # pyright: ignore  (an ack: bytes)
        except Exception as e:
            raise mqttbase.fail(self, e) from None

    def disconnect(self, data=b"\xe0\x00"):
        s, self.sock = self.sock, None
        if s:
            s.close(data)  # (b"" after a failure: the will stays armed)

    async def aping(self):
        self.phase = "ping"
        try:
            await self._asend(net.deadline(self.timeout), 0xC0)
        except Exception as e:
            raise mqttbase.fail(self, e) from None
        if self.pong is None:
            self.pong = net.deadline(self.timeout)

    async def apublish(self, topic, msg, retain=False, qos=0, code=_PUBLISH):
        # (code _SUBSCRIBE: asubscribe()'s packet, msg its QoS byte) as mqtt's publish
        if qos not in (0, 1):
            raise ValueError("qos: 0 or 1")
        self.phase = "publish" if code == _PUBLISH else "subscribe"
        try:
            stop = net.deadline(self.timeout)
            pid = b""
            if qos:
                self.pid = self.pid % 65535 + 1
                pid = self.pid.to_bytes(2, "big")
            topic = mqttbase.encode(topic)
            if code == _PUBLISH:
                code |= qos << 1 | retain
                topic += pid
            else:
                topic = pid + topic
            await self._asend(stop, code, topic, msg.encode() if isinstance(msg, str) else msg)
            if qos:
                self.phase = self.phase[0] + "uback"
                if (await self._await(stop, _PUBACK if code < _SUBSCRIBE else _SUBACK,  # pyright: ignore
                                      pid))[2:3] == b"\x80":
                    raise MQTTException(0x80)
        except Exception as e:
            raise mqttbase.fail(self, e) from None

    async def asubscribe(self, topic, qos=0):
        await self.apublish(topic, bytes((qos,)), False, 1, _SUBSCRIBE)

    async def await_msg(self, wait_ms=None):
        """wait_msg() on asyncio."""
        try:
            now = time.ticks_ms()
            if self.pong is not None and time.ticks_diff(now, self.pong) >= 0:
                self.phase = "ping"
                raise mqttbase.fail(self, "Timeout:no PINGRESP")
            if wait_ms is None:
                wait_ms = self.timeout * 1000
            if self.keepalive:
                # (since the older of the last packet sent and received: a
                # broker that falls silent while the client publishes is pinged)
                n = self.keepalive * 500 - max(time.ticks_diff(now, self.sent),
                                               time.ticks_diff(now, self.heard))
                if n <= 0:
                    await self.aping()
                    n = self.keepalive * 500
                wait_ms = min(wait_ms, n)
            self.phase = "read"
            return await self._await(time.ticks_add(now, int(wait_ms)))
        except Exception as e:
            raise mqttbase.fail(self, e) from None
