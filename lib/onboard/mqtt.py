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
# onboard.amqtt is this client on asyncio (the runtime's): it shares the
# module-level helpers below.
# Few functions and names on purpose: each costs RAM once loaded.
import socket
import time
from micropython import const

_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBACK = const(0x90)


class MQTTException(Exception):
    """The broker refused: args[0] is the CONNACK (or SUBACK) code."""


def _field(s):
    # a string field: its length (2 bytes) and its UTF-8 bytes
    s = s.encode() if isinstance(s, str) else s
    return len(s).to_bytes(2, "big") + s


def _head(code, args):
    # a packet's fixed header: its type, then the args' length, 7 bits a byte
    n = 0
    for s in args:
        n += len(s)
    h = bytearray((code,))
    while True:
        h.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return h


def _fail(self, e, name=None):
    # A failure leaves the client's (self's) connection unusable: close it (no DISCONNECT, so
    # the will stays armed), then the error naming host and phase. e: an
    # exception, or the reason (str) of a failure of the kind onboard.errors
    # calls name (default ProtocolError).
    self.disconnect(b"")
    from onboard import errors

    if isinstance(e, str):
        return errors.fail(getattr(errors, name) if name else errors.ProtocolError,
                           self.server, self.phase, e)
    return errors.wrap(e, self.server, self.phase)


def _hello(self, clean_session):
    # CONNECT's parts after its fixed header
    flags = 2 if clean_session else 0
    data = _field(self.client_id)
    if self.lw_topic:
        flags |= 4 | (self.lw_qos & 3) << 3 | (0x20 if self.lw_retain else 0)
        data += _field(self.lw_topic) + _field(self.lw_msg)
    if self.user is not None:
        flags |= 0x80
        data += _field(self.user)
        if self.pswd is not None:
            flags |= 0x40
            data += _field(self.pswd)
    return b"\x00\x04MQTT\x04", bytes((flags, self.keepalive >> 8, self.keepalive & 255)), data


def _got(self, code, data, want, pid):
    # One packet from the broker, checked. Returns the body of the ack `want`
    # for pid (CONNACK: the first packet must be it), or the packet id to
    # acknowledge of a QoS 1 PUBLISH once the callback has returned; else None.
    n = len(data)
    if code == want:
        # CONNACK: flags and code; PUBACK: packet id; SUBACK: packet id and code
        if n < (3 if want == _SUBACK else 2):
            raise _fail(self, "short ack")
        if want == _CONNACK or data[:2] == pid:
            return data
    elif want == _CONNACK:
        raise _fail(self, "bad packet %02x" % code)
    elif code & 0xF0 == _PUBLISH:
        qos = code >> 1 & 3
        n -= 2 + int.from_bytes(data[:2], "big") + 2 * qos  # the payload's length
        if qos > 1 or n < 0:
            raise _fail(self, "bad packet %02x" % code)
        if self.cb:
            try:
                self.cb(data[2 : len(data) - n - 2 * qos], data[len(data) - n :])
            except Exception as e:
                # unacknowledged, so the broker delivers it again; the session stays
                from onboard import log

                log.error("mqtt", "callback raised %s", type(e).__name__)
                qos = 0
        if qos:
            return data[len(data) - n - 2 : len(data) - n]
    elif code == 0xD0:  # PINGRESP
        self.pong = None
    elif code & 0xF0 not in (_PUBACK, _SUBACK, 0xB0):
        raise _fail(self, "bad packet %02x" % code)


class MQTTClient:
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0,
                 ssl=None, timeout=10, max_packet=4096):
        self.client_id = client_id
        self.server = server
        self.port = port or (8883 if ssl else 1883)
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.timeout = timeout
        self.max_packet = max_packet
        # sock: the socket (TLS once wrapped; raw: its plain one), pong: when
        # a PINGRESP is due, sent: when the last packet left (ticks)
        self.sock = self.cb = self.lw_topic = self.pong = None
        self.pid = self.sent = 0
        self.phase = "connect"  # what errors name

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.lw_topic = topic
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    def _read(self, stop, n, poll=False):
        # n bytes (0: none), each socket call bounded by what is left until
        # stop, ticks (poll: one more read without waiting past it)
        data = b""
        while True:
            if not self.sock:
                raise OSError(107)  # ENOTCONN
            ms = time.ticks_diff(stop, time.ticks_ms())
            if ms <= 0 and not poll:
                raise OSError(110)  # ETIMEDOUT
            self.raw.settimeout(max(ms, 0) / 1000)
            if len(data) >= n:
                return data
            # recv returns what has arrived (read would wait for all of it)
            s = self.sock.recv(n - len(data))
            if s is None:  # the TLS layer would block: the time is up
                raise OSError(110)
            if not s:
                raise EOFError
            data += s

    def _send(self, stop, code, *args):
        self._read(stop, 0)
        self.sock.write(_head(code, args))
        for s in args:
            self.sock.write(s)
        self.sent = time.ticks_ms()

    def _next(self, stop, want=0, pid=0):
        # Handle the broker's packets until the ack `want` for pid arrives (its
        # body) or, with want 0, one packet (its type; None when none starts
        # before stop, ticks).
        while True:
            try:
                code = self._read(stop, 1, True)[0]
            except OSError as e:
                if want or e.errno not in (11, 110, 116):  # EAGAIN, ETIMEDOUT (lwIP: 116)
                    raise
                return None
            end = time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))  # the rest
            n = shift = 0
            while True:  # the remaining length: 7 bits a byte, at most 4 bytes
                s = self._read(end, 1)[0]
                n |= (s & 0x7F) << shift
                if not s & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise _fail(self, "bad packet %02x" % code)
            if n > self.max_packet:
                raise _fail(self, "packet over max_packet")
            s = _got(self, code, self._read(end, n), want, pid)
            if s:
                if code == want:
                    return s
                self._send(end, _PUBACK, s)
            if not want:
                return code

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
                raise _fail(self, "name lookup failed", "DNSError") from None
            self.sock = self.raw = socket.socket(s[0], socket.SOCK_STREAM, s[2])
            self._read(stop, 0)
            self.sock.connect(s[-1])
            if self.ssl:
                self.phase = "tls"
                self._read(stop, 0)
                self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)
            self.phase = "login"
            self._send(stop, 0x10, *_hello(self, clean_session))
            s = self._next(stop, _CONNACK)
            if s[1]:  # pyright: ignore  (an ack: bytes)
                raise MQTTException(s[1])  # pyright: ignore
            self.pong = None
            return s[0] & 1  # pyright: ignore
        except Exception as e:
            raise _fail(self, e) from None

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

    def ping(self):
        self.phase = "ping"
        try:
            stop = time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))
            self._send(stop, 0xC0)
        except Exception as e:
            raise _fail(self, e) from None
        if self.pong is None:
            self.pong = stop

    def _ask(self, phase, code, topic, data, want):
        # PUBLISH or SUBSCRIBE; with want, wait for its ack (a packet id first)
        self.phase = phase
        try:
            stop = time.ticks_add(time.ticks_ms(), int(self.timeout * 1000))
            pid = b""
            if want:
                self.pid = self.pid % 65535 + 1
                pid = self.pid.to_bytes(2, "big")
            topic = _field(topic)
            self._send(stop, code, pid + topic if want == _SUBACK else topic + pid, data)
            if want:
                self.phase = phase[0] + "uback"
                if self._next(stop, want, pid)[2:3] == b"\x80":  # pyright: ignore
                    raise MQTTException(0x80)
        except Exception as e:
            raise _fail(self, e) from None

    def publish(self, topic, msg, retain=False, qos=0):
        if qos not in (0, 1):
            raise ValueError("qos: 0 or 1")
        self._ask("publish", _PUBLISH | qos << 1 | retain, topic,
                  msg.encode() if isinstance(msg, str) else msg, qos and _PUBACK)

    def subscribe(self, topic, qos=0):
        """MQTTException(0x80) when refused."""
        self._ask("subscribe", 0x82, topic, bytes((qos,)), _SUBACK)

    def wait_msg(self, wait=None):
        """At most one packet that starts within wait ms (default: the
        timeout): its type, or None when none came. Sends the keepalive ping
        when due; a PINGRESP missing past its time is a Timeout."""
        try:
            now = time.ticks_ms()
            if self.pong is not None and time.ticks_diff(now, self.pong) >= 0:
                self.phase = "ping"
                raise _fail(self, "no PINGRESP", "Timeout")
            if wait is None:
                wait = self.timeout * 1000
            if self.keepalive:
                n = self.keepalive * 500 - time.ticks_diff(now, self.sent)
                if n <= 0:
                    self.ping()
                    n = self.keepalive * 500
                wait = min(wait, n)
            self.phase = "read"
            return self._next(time.ticks_add(now, int(wait)))
        except Exception as e:
            raise _fail(self, e) from None

    def check_msg(self):
        """wait_msg() without waiting: None when nothing has come."""
        return self.wait_msg(0)
