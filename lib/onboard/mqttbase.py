# The part of the MQTT client that onboard.mqtt (blocking, on a socket) and
# onboard.amqtt (asyncio, on onboard.net, the runtime's) share: the client's
# settings, building the packets sent and checking the packets received, and
# failing. A module of its own so that each of the two loads only its own
# transport code (RAM: each function, object and new name costs some once
# loaded; the helpers' names are words MicroPython has interned already).
# Not for applications: use onboard.mqtt's MQTTClient and MQTTException.
from micropython import const

_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBACK = const(0x90)


class MQTTException(Exception):
    """The broker refused: args[0] is the CONNACK (or SUBACK) code."""


def encode(s):
    # a string field: its length (2 bytes) and its UTF-8 bytes
    s = s.encode() if isinstance(s, str) else s
    return len(s).to_bytes(2, "big") + s


def head(code, args):
    # a packet's fixed header: its type, then the args' length, 7 bits a byte
    n = 0
    for s in args:
        n += len(s)
    s = bytearray((code,))
    while True:
        s.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return s


def fail(self, e):
    # A failure leaves the client's (self's) connection unusable: close it
    # (no DISCONNECT, so the will stays armed), then the error naming host
    # and phase. e: an exception, "Kind:why", a failure of the kind
    # onboard.errors calls Kind, or a packet type that should not have come.
    # (The kind rides in the reason, whose literal is over 10 characters and
    # so no qstr: the kinds' names are interned only when one happens.)
    self.disconnect(b"")
    from onboard import errors

    if isinstance(e, int):
        e = "ProtocolError:bad packet %02x" % e
    if isinstance(e, str):
        e = e.split(":", 1)
        return errors.fail(getattr(errors, e[0]), self.server, self.phase, e[1])
    return errors.wrap(e, self.server, self.phase)


def start(self, clean_session):
    # CONNECT's parts after its fixed header
    flags = 2 if clean_session else 0
    s = encode(self.client_id)
    if self.will:
        flags |= self.will[0]
        s += self.will[1]
    if self.user is not None:
        flags |= 0x80
        s += encode(self.user)
        if self.pswd is not None:
            flags |= 0x40
            s += encode(self.pswd)
    return b"\x00\x04MQTT\x04", bytes((flags, self.keepalive >> 8, self.keepalive & 255)), s


def parse(self, code, data, match, pid):
    # One packet from the broker, checked. Returns the body of the ack `match`
    # for pid (CONNACK: the first packet must be it; a refusal raises
    # MQTTException(code)), or the packet id to acknowledge of a QoS 1
    # PUBLISH once the callback has returned; else None.
    n = len(data)
    if code == match:
        # CONNACK: flags and code; PUBACK: packet id; SUBACK: packet id and code
        if n < (3 if match == _SUBACK else 2):
            raise fail(self, "ProtocolError:short ack")
        if match == _CONNACK:  # refused: MQTTException(its code)
            if data[1]:
                raise MQTTException(data[1])
            self.pong = None
            return data
        if data[:2] == pid:
            return data
    elif match == _CONNACK:
        raise fail(self, code)
    elif code & 0xF0 == _PUBLISH:
        qos = code >> 1 & 3
        pos = 2 + int.from_bytes(data[:2], "big")  # after the topic
        if qos > 1 or n < pos + 2 * qos:
            raise fail(self, code)
        if self.cb:
            # (retained: whether the broker kept it, read by the runtime's callback)
            self.retained = code & 1
            try:
                self.cb(data[2:pos], data[pos + 2 * qos :])
            except Exception as e:
                # unacknowledged, so the broker delivers it again; the session stays
                from onboard import log

                log.error("mqtt", "callback raised %s", type(e).__name__)
                qos = 0
        if qos:
            return data[pos : pos + 2]
    elif code == 0xD0:  # PINGRESP
        self.pong = None
    elif code & 0xF0 not in (_PUBACK, _SUBACK, 0xB0):
        raise fail(self, code)


class MQTTClient:
    # onboard.mqtt's and onboard.amqtt's MQTTClient add connecting, the
    # operations and disconnect (which fail calls) on their transport

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
        # a PINGRESP is due, sent: when the last packet left, heard: when the
        # last one came (ticks; keepalive pings when either is old)
        self.sock = self.cb = self.will = self.pong = None
        self.pid = self.sent = self.heard = 0
        self.phase = "connect"  # what errors name

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        # kept as CONNECT's will flags and fields: one attribute, not
        # umqtt.simple's four (fewer names). No topic: no will, as there.
        self.will = topic and (4 | (qos & 3) << 3 | (0x20 if retain else 0),
                               encode(topic) + encode(msg))
