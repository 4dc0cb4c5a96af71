# MQTT 3.1.1 client with umqtt.simple's interface and meaning, except:
# the timeout bounds every operation (umqtt.simple loses it after the first
# wait_msg), a QoS 1 publish waits for its PUBACK only up to the timeout,
# packets from the broker are bounded and checked (never assert, never an
# unbounded allocation), and wait_msg()/check_msg() send the keepalive ping
# when one is due and notice a missing PINGRESP.
import socket
import time
from micropython import const

from onboard.errors import TIMEOUT_ERRNOS, NetError, ProtocolError, Timeout, fail, wrap

_CONNECT = const(0x10)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)


class MQTTException(Exception):
    """The broker refused: args[0] is the CONNACK (or SUBACK) code."""


def _bytes(s):
    return s.encode() if isinstance(s, str) else s


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
        self.sock = self._raw = None
        self.pid = 0
        self.cb = None
        self.lw_topic = None
        self._sent = 0  # ticks of the last packet sent
        self._pong_due = None
        self._hdr = bytearray(5)

    def __repr__(self):
        return "<MQTTClient %s:%d>" % (self.server, self.port)

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.lw_topic = _bytes(topic)
        self.lw_msg = _bytes(msg)
        self.lw_qos = qos
        self.lw_retain = retain

    # -- transport ---------------------------------------------------------

    def _fail(self, e, phase):
        # Any failure leaves the connection unusable: close it, say where.
        self._close()
        return e if isinstance(e, MQTTException) else wrap(e, self.server, phase)

    def _close(self):
        for s in (self.sock, self._raw):
            if s:
                try:
                    s.close()
                except OSError:
                    pass
        self.sock = self._raw = None

    def _deadline(self):
        return time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))

    def _left(self, deadline):
        ms = time.ticks_diff(deadline, time.ticks_ms())
        if ms <= 0:
            raise OSError(110)
        self._raw.settimeout(ms / 1000)

    def _read(self, n, deadline):
        buf = b""
        while len(buf) < n:
            self._left(deadline)
            part = self.sock.recv(n - len(buf))
            if part is None:
                raise OSError(110)
            if not part:
                raise fail(ProtocolError, self.server, "read", "connection closed")
            buf += part
        return buf

    def _write(self, *parts):
        if not self.sock:
            raise fail(NetError, self.server, "write", "not connected")
        deadline = self._deadline()
        for p in parts:
            self._left(deadline)
            self.sock.write(p)
        self._sent = time.ticks_ms()

    def _header(self, op, length):
        # fixed header into the preallocated buffer; returns a view of it
        h = self._hdr
        h[0] = op
        i = 1
        while True:
            h[i] = length & 0x7F
            length >>= 7
            if not length:
                return memoryview(h)[: i + 1]
            h[i] |= 0x80
            i += 1

    def _packet(self, wait_ms):
        # -> (op, body) or None when no packet starts within wait_ms
        self._raw.settimeout(wait_ms / 1000)
        try:
            first = self.sock.recv(1)
        except OSError as e:
            if e.args and e.args[0] in TIMEOUT_ERRNOS:
                return None
            raise
        if first is None:
            return None
        if not first:
            raise fail(ProtocolError, self.server, "read", "connection closed")
        deadline = self._deadline()
        n = shift = 0
        for _ in range(4):
            c = self._read(1, deadline)[0]
            n |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                break
        else:
            raise fail(ProtocolError, self.server, "read", "bad remaining length")
        if n > self.max_packet:
            raise fail(ProtocolError, self.server, "read", "packet over max_packet")
        return first[0], self._read(n, deadline) if n else b""

    # -- operations ----------------------------------------------------------

    def connect(self, clean_session=True, timeout=None):
        """Connect and log in; raises MQTTException(code) when refused.
        Returns True when the broker kept a session."""
        if timeout is not None:
            self.timeout = timeout
        self._close()
        phase = "connect"
        try:
            deadline = self._deadline()
            addr = socket.getaddrinfo(self.server, self.port, 0, socket.SOCK_STREAM)[0]
            self._raw = self.sock = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
            self._left(deadline)
            self._raw.connect(addr[-1])
            if self.ssl:
                phase = "tls"
                self._left(deadline)
                self.sock = self.ssl.wrap_socket(self._raw, server_hostname=self.server)
            phase = "login"
            flags = 2 if clean_session else 0
            fields = [self.client_id]
            if self.lw_topic:
                flags |= 0x4 | (self.lw_qos & 1) << 3 | (self.lw_qos & 2) << 3 \
                    | (0x20 if self.lw_retain else 0)
                fields += [self.lw_topic, self.lw_msg]
            if self.user is not None:
                flags |= 0x80
                fields.append(_bytes(self.user))
                if self.pswd is not None:
                    flags |= 0x40
                    fields.append(_bytes(self.pswd))
            body = bytearray(b"\x00\x04MQTT\x04")
            body.append(flags)
            body += self.keepalive.to_bytes(2, "big")
            for f in fields:
                body += len(f).to_bytes(2, "big")
                body += f
            self._write(self._header(_CONNECT, len(body)), body)
            del body, fields
            got = self._packet(self.timeout * 1000)
            if not got:
                raise OSError(110)
            op, ack = got
            if op != 0x20 or len(ack) != 2:
                raise fail(ProtocolError, self.server, phase, "no CONNACK")
            if ack[1]:
                raise MQTTException(ack[1])
            self._pong_due = None
            return ack[0] & 1
        except Exception as e:
            raise self._fail(e, phase) from None

    def disconnect(self):
        try:
            self._write(b"\xe0\x00")
        except OSError:
            pass
        finally:
            self._close()

    def ping(self):
        try:
            self._write(b"\xc0\x00")
        except Exception as e:
            raise self._fail(e, "ping") from None
        if self._pong_due is None:
            self._pong_due = self._deadline()

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def publish(self, topic, msg, retain=False, qos=0):
        """Send a message; with qos=1 wait up to the timeout for its PUBACK."""
        topic = _bytes(topic)
        msg = _bytes(msg)
        if qos not in (0, 1):
            raise ValueError("qos: 0 or 1")
        try:
            n = 2 + len(topic) + len(msg) + (2 if qos else 0)
            pid = self._next_pid() if qos else 0
            head = len(topic).to_bytes(2, "big") + topic
            if qos:
                head += pid.to_bytes(2, "big")
            self._write(self._header(_PUBLISH | qos << 1 | retain, n), head, msg)
            if qos:
                self._until(_PUBACK, pid, "puback")
        except Exception as e:
            raise self._fail(e, "publish") from None

    def subscribe(self, topic, qos=0):
        topic = _bytes(topic)
        try:
            pid = self._next_pid()
            self._write(self._header(_SUBSCRIBE, 5 + len(topic)),
                        pid.to_bytes(2, "big") + len(topic).to_bytes(2, "big") + topic,
                        bytes((qos,)))
            ack = self._until(_SUBACK, pid, "suback")
            if ack[2] == 0x80:
                raise MQTTException(0x80)
        except Exception as e:
            raise self._fail(e, "subscribe") from None

    def _until(self, want, pid, phase):
        # Handle packets until the ack `want` for pid arrives or the timeout ends.
        deadline = self._deadline()
        while True:
            ms = time.ticks_diff(deadline, time.ticks_ms())
            got = self._packet(ms) if ms > 0 else None
            if got is None:
                raise fail(Timeout, self.server, phase, "timed out")
            op, body = got
            if op == want:
                if len(body) < 2:
                    raise fail(ProtocolError, self.server, phase, "short ack")
                if int.from_bytes(body[:2], "big") == pid:
                    return body
            else:
                self._handle(op, body)

    def _handle(self, op, body):
        if op & 0xF0 == _PUBLISH:
            qos = op >> 1 & 3
            tl = int.from_bytes(body[:2], "big")
            pos = 2 + tl + (2 if qos else 0)
            if qos > 1 or len(body) < pos:
                raise fail(ProtocolError, self.server, "read", "malformed PUBLISH")
            topic = body[2 : 2 + tl]
            if qos:
                self._write(b"\x40\x02", body[pos - 2 : pos])
            if self.cb:
                self.cb(topic, body[pos:])
        elif op == _PINGRESP:
            self._pong_due = None
        elif op & 0xF0 not in (_PUBACK, _SUBACK, 0xB0):
            raise fail(ProtocolError, self.server, "read", "unexpected packet %02x" % op)
        return op

    def wait_msg(self, _wait_ms=None):
        """Handle one packet from the broker, waiting up to the timeout for it
        (keepalive pings sent meanwhile). Returns the packet type, or None
        when nothing came."""
        try:
            now = time.ticks_ms()
            if self._pong_due is not None and time.ticks_diff(now, self._pong_due) >= 0:
                raise fail(Timeout, self.server, "ping", "no PINGRESP")
            wait = self.timeout * 1000 if _wait_ms is None else _wait_ms
            if self.keepalive:
                due = self.keepalive * 500 - time.ticks_diff(now, self._sent)
                if due <= 0:
                    self.ping()
                    due = self.keepalive * 500
                wait = min(wait, due)
            got = self._packet(wait)
            return self._handle(*got) if got else None
        except Exception as e:
            raise self._fail(e, "wait") from None

    def check_msg(self):
        """wait_msg() without waiting: None when nothing has arrived."""
        return self.wait_msg(0)
