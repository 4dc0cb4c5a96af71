# MQTT 3.1.1 client with umqtt.simple's interface and meaning, written
# directly on a socket, except: the timeout bounds every operation (each
# socket call gets what is left of its deadline), a QoS 1 publish waits for
# its PUBACK only up to the timeout, packets from the broker are bounded and
# checked (never assert, never an unbounded allocation), an incoming QoS 1
# message is acknowledged once the callback has returned (a raising callback
# is logged and left unacknowledged, and the session stays), and
# wait_msg()/check_msg() send the keepalive ping when one is due and notice a
# missing PINGRESP. Failures raise onboard.errors' kinds (OSErrors naming host
# and phase, never a secret); that module is loaded only when one happens.
# onboard.mqttbase holds what this client shares with onboard.amqtt (the same
# client on asyncio, the runtime's): settings, packets, checks, failing.
# (Few functions and names on purpose: each costs RAM once loaded. read, send
# and wait are this module's helpers on the socket, not for applications.)
import socket
import time
from micropython import const

from onboard import mqttbase

_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)

MQTTException = mqttbase.MQTTException


def read(self, stop, n, poll=False):
    # n bytes (0: none) from the socket, each call bounded by what is left
    # until stop, ticks (poll: one more read, without waiting, past it).
    # TLS (non-blocking): waited for with poll, not by a read's timeout:
    # mbedTLS reads a record to its end, each raw read with the socket's
    # whole timeout (a record sent a byte at a time would hold it past any
    # deadline), and a wait that nothing comes in must leave the session usable
    data = b""
    while True:
        if not self.sock:
            raise OSError(107)  # ENOTCONN
        ms = time.ticks_diff(stop, time.ticks_ms())
        if ms <= 0 and not poll:
            raise OSError(110)  # ETIMEDOUT
        if self.sock is self.raw:  # (plain; TLS is polled, below)
            self.raw.settimeout(max(ms, 0) / 1000)
        if len(data) >= n:
            return data
        if self.ssl and not self.poller.poll(max(ms, 0)):
            raise OSError(110)  # ETIMEDOUT
        # recv returns what has arrived (read would wait for all of it)
        s = self.sock.recv(n - len(data))
        if s is None:  # (TLS: no whole record yet)
            continue
        if not s:
            raise EOFError
        data += s


def send(self, stop, code, *args):
    for s in (mqttbase.head(code, args),) + args:
        s = memoryview(s)
        while s:
            read(self, stop, 0)
            n = self.sock.write(s)
            if n is None:  # (TLS: it would block; the handshake runs in the first write)
                self.poller.modify(self.sock, 4)  # POLLOUT
                n = self.poller.poll(max(time.ticks_diff(stop, time.ticks_ms()), 0))
                self.poller.modify(self.sock, 1)  # POLLIN
                if not n:
                    raise OSError(110)  # ETIMEDOUT
                continue
            s = s[n:]
    self.sent = time.ticks_ms()


def wait(self, stop, match=0, pid=b""):
    # Handle the broker's packets until the ack `match` for pid arrives (its
    # body) or, with match 0, one packet (its type; None when none starts
    # before stop, ticks).
    while True:
        try:
            code = read(self, stop, 1, True)[0]
        except OSError as e:
            if match or e.errno not in (11, 110, 116):  # EAGAIN, ETIMEDOUT (lwIP: 116)
                raise
            return None
        end = time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))  # the rest
        self.heard = time.ticks_ms()
        n = shift = 0
        while True:  # the remaining length: 7 bits a byte, at most 4 bytes
            s = read(self, end, 1)[0]
            n |= (s & 0x7F) << shift
            if not s & 0x80:
                break
            shift += 7
            if shift > 21:
                raise mqttbase.fail(self, code)
        if n > self.max_packet:
            raise mqttbase.fail(self, "ProtocolError:packet over max_packet")
        s = mqttbase.parse(self, code, read(self, end, n), match, pid)
        if s:
            if code == match:
                return s
            send(self, end, _PUBACK, s)
        if not match:
            return code


class MQTTClient(mqttbase.MQTTClient):
    def connect(self, clean_session=True, timeout=None):
        """Connect and log in; MQTTException(code) when refused, a NetError
        otherwise. Returns True when the broker kept a session. One deadline
        bounds the whole: lookup, TCP, TLS, CONNECT, CONNACK."""
        if timeout is not None:
            self.timeout = timeout
        self.disconnect(b"")
        self.phase = "connect"
        try:
            stop = time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))
            try:
                s = socket.getaddrinfo(self.server, self.port, 0, socket.SOCK_STREAM)[0]
            except (OSError, IndexError):
                # (a lookup cannot be bounded on MicroPython: lwIP's DNS timeout applies)
                self.phase = "dns"
                raise mqttbase.fail(self, "DNSError:name lookup failed") from None
            self.sock = self.raw = socket.socket(s[0], socket.SOCK_STREAM, s[2])
            read(self, stop, 0)
            self.sock.connect(s[-1])
            self.phase = "login"
            ssl = self.ssl
            if ssl:
                # non-blocking, each TLS call polled; the handshake runs in
                # the CONNECT's first write (phase tls until it is sent)
                self.phase = "tls"
                self.raw.setblocking(False)
                self.sock = ssl.wrap_socket(self.raw, server_hostname=self.server,
                                            do_handshake_on_connect=False)
                from select import POLLIN, poll

                self.poller = poll()
                self.poller.register(self.sock, POLLIN)
            send(self, stop, 0x10, *mqttbase.start(self, clean_session))
            self.phase = "login"
            return wait(self, stop, 0x20)[0] & 1  # pyright: ignore  (an ack: bytes)
        except Exception as e:
            raise mqttbase.fail(self, e) from None

    def disconnect(self, data=b"\xe0\x00"):
        """Send DISCONNECT (best effort) and close."""
        s, self.sock = self.sock, None
        if s:
            try:
                if data:  # (b"" after a failure: the will stays armed)
                    s.write(data)
            except OSError:
                pass
            s.close()
            # (a TLS socket whose handshake failed lets go of its raw one
            # unclosed, for the collector: MicroPython v1.25's TLS module)
            self.raw.close()

    def ping(self):
        self.phase = "ping"
        try:
            stop = time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))
            send(self, stop, 0xC0)
        except Exception as e:
            raise mqttbase.fail(self, e) from None
        if self.pong is None:
            self.pong = stop

    def publish(self, topic, msg, retain=False, qos=0, code=_PUBLISH):
        # (code _SUBSCRIBE: subscribe()'s packet, msg its QoS byte)
        if qos not in (0, 1):
            raise ValueError("qos: 0 or 1")
        self.phase = "publish" if code == _PUBLISH else "subscribe"
        try:
            stop = time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))
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
            send(self, stop, code, topic, msg.encode() if isinstance(msg, str) else msg)
            if qos:
                self.phase = self.phase[0] + "uback"
                if wait(self, stop, _PUBACK if code < _SUBSCRIBE else _SUBACK,  # pyright: ignore
                        pid)[2:3] == b"\x80":
                    raise MQTTException(0x80)
        except Exception as e:
            raise mqttbase.fail(self, e) from None

    def subscribe(self, topic, qos=0):
        """MQTTException(0x80) when refused."""
        self.publish(topic, bytes((qos,)), False, 1, _SUBSCRIBE)

    def wait_msg(self, wait_ms=None):
        """At most one packet that starts within wait_ms (default: the
        timeout): its type, or None when none came. Sends the keepalive ping
        when due; a PINGRESP missing past its time is a Timeout."""
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
                    self.ping()
                    n = self.keepalive * 500
                wait_ms = min(wait_ms, n)
            self.phase = "read"
            return wait(self, time.ticks_add(now, int(wait_ms)))
        except Exception as e:
            raise mqttbase.fail(self, e) from None

    def check_msg(self):
        """wait_msg() without waiting: None when nothing has come."""
        return self.wait_msg(0)
