"""Blynk's MQTT login in front of Mosquitto.

Blynk devices all log in as user "device" with their auth token as the
password, and all use the same topic names (downlink/#, ds/...): one
password file cannot tell them apart. This front checks the token, logs in
to Mosquitto as the device's own internal user, and keeps each device's
topics apart by putting them under blynk/<device id>/ on the broker side.
Everything else is Mosquitto's: sessions, QoS, retained messages, keepalive.
"""

import asyncio
import secrets
import socket
import ssl
import struct
import threading

from .broker import LoopbackFront

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE = 1, 2, 3, 4, 8, 10
MAX_PACKET = 256 * 1024
# Blynk's limit on a device's message, which its MQTT API counts over the
# variable header and the payload: a PUBLISH's whole body
MAX_MESSAGE = 1024


def encode_length(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(b):
    return struct.pack(">H", len(b)) + b


async def read_packet(reader):
    """(first byte, body) or None at EOF; ValueError on a malformed length."""
    first = await reader.read(1)
    if not first:
        return None
    n = shift = 0
    for _ in range(4):
        c = (await reader.readexactly(1))[0]
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            break
    else:
        raise ValueError("bad remaining length")
    if n > MAX_PACKET:
        raise ValueError("packet too large")
    return first[0], await reader.readexactly(n)


def packet(first, body):
    return bytes((first,)) + encode_length(len(body)) + body


def parse_connect(body):
    """The CONNECT fields as a dict (bytes values), or ValueError."""
    pos = 0

    def take_string():
        nonlocal pos
        (n,) = struct.unpack_from(">H", body, pos)
        value = body[pos + 2 : pos + 2 + n]
        if len(value) != n:
            raise ValueError("short string")
        pos += 2 + n
        return value

    if take_string() != b"MQTT":
        raise ValueError("not MQTT 3.1.1")
    level, flags = body[pos], body[pos + 1]
    (keepalive,) = struct.unpack_from(">H", body, pos + 2)
    pos += 4
    out = {"level": level, "flags": flags, "keepalive": keepalive, "client_id": take_string()}
    if flags & 0x04:
        out["will_topic"], out["will_msg"] = take_string(), take_string()
    out["username"] = take_string() if flags & 0x80 else None
    out["password"] = take_string() if flags & 0x40 else None
    return out


def build_connect(c, client_id, username, password, prefix):
    flags = (c["flags"] & 0x3E) | 0xC0  # keep clean session and will, set user and password
    body = mqtt_string(b"MQTT") + bytes((4, flags)) + struct.pack(">H", c["keepalive"])
    body += mqtt_string(client_id)
    if c["flags"] & 0x04:
        body += mqtt_string(prefix + c["will_topic"]) + mqtt_string(c["will_msg"])
    return packet(0x10, body + mqtt_string(username) + mqtt_string(password))


def rewrite_publish(first, body, old, new):
    (n,) = struct.unpack_from(">H", body, 0)
    topic = body[2 : 2 + n]
    if old:
        if not topic.startswith(old):
            return None  # not this device's: never shown to it
        topic = topic[len(old):]
    return packet(first, mqtt_string(new + topic) + body[2 + n :])


def rewrite_filters(first, body, prefix, with_qos):
    out, pos = bytearray(body[:2]), 2
    while pos < len(body):
        (n,) = struct.unpack_from(">H", body, pos)
        out += mqtt_string(prefix + body[pos + 2 : pos + 2 + n])
        pos += 2 + n
        if with_qos:
            out.append(body[pos])
            pos += 1
    return packet(first, bytes(out))


class BlynkFront(LoopbackFront):
    def __init__(self, sim, certfile, keyfile):
        super().__init__(certfile, keyfile)
        self.sim = sim
        self.sessions = {}  # device id -> set of writers
        self.internal = {}  # device id -> internal broker password
        self.port = self.tls_port = 0
        self.logins = {"plain": 0, "tls": 0}  # accepted device logins per listener
        self.acks = {}  # device id -> PUBACKs it sent (QoS 1 messages it acknowledged)
        self._made = threading.Lock()  # (credentials: one account made at a time)

    def start(self):
        self.port, self.tls_port = self.listen()
        return self

    def online(self, device_id):
        return bool(self.sessions.get(device_id))

    def kick(self, device_id):
        """Close the device's sessions (its token was replaced)."""
        for writer in list(self.sessions.get(device_id, ())):
            self.loop.call_soon_threadsafe(writer.close)

    def credentials(self, device_id):
        """The device's internal broker login, created on first use (its
        activation): known to the broker once this returns."""
        password = self.internal.get(device_id)
        if password is None:  # (a login finds it made: it never waits on another's making)
            with self._made:
                password = self.internal.get(device_id)
                if password is None:
                    password = secrets.token_urlsafe(18)
                    self.sim.broker.allow(f"blynk-{device_id}", password,
                                          (f"blynk/{device_id}/#",))
                    self.internal[device_id] = password
        return f"blynk-{device_id}", password

    async def _client(self, reader, writer):
        try:
            got = await asyncio.wait_for(read_packet(reader), 10)
            if not got or got[0] >> 4 != CONNECT:
                return
            c = parse_connect(got[1])
        except (ValueError, struct.error, IndexError, asyncio.TimeoutError,
                asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        device_id = self.sim.clouds["blynk"].mqtt_login(
            (c["username"] or b"").decode(errors="replace"),
            (c["password"] or b"").decode(errors="replace"))
        token = (c["password"] or b"").decode(errors="replace")
        self.sim.log(f"blynk mqtt login as {(c['username'] or b'').decode(errors='replace')!r} "
                     f"token {token[:2]}…({len(token)} chars): "
                     + ("refused" if device_id is None else f"device {device_id}"))
        if device_id is None:
            # CONNACK 4, bad user name or password: what Blynk's device MQTT
            # API documents for a problem with the credentials
            writer.write(packet(0x20, b"\x00\x04"))
            await writer.drain()
            writer.close()
            return
        for old in list(self.sessions.get(device_id, ())):
            old.close()  # one connection per token: a new login drops the old one
        user, password = await asyncio.get_running_loop().run_in_executor(
            None, self.credentials, device_id)
        self.logins["tls" if writer.get_extra_info("sslcontext") else "plain"] += 1
        prefix = f"blynk/{device_id}/".encode()
        try:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.sim.broker.mqtt_port)
        except OSError:
            writer.close()
            return
        up_writer.write(build_connect(c, f"blynk-{device_id}".encode(), user.encode(),
                                      password.encode(), prefix))
        self.sessions.setdefault(device_id, set()).add(writer)
        try:
            await asyncio.gather(self._pump(reader, up_writer, prefix, True, writer, device_id),
                                 self._pump(up_reader, writer, prefix, False, device_id))
        finally:
            self.sessions[device_id].discard(writer)
            for w in (writer, up_writer):
                w.close()

    async def _pump(self, reader, writer, prefix, upstream, other, device_id=None):
        # other: the device's writer (upstream) or its device id (downstream)
        try:
            while True:
                got = await read_packet(reader)
                if got is None:
                    break
                first, body = got
                kind = first >> 4
                out = packet(first, body)
                if upstream and kind == PUBACK:
                    self.acks[device_id] = self.acks.get(device_id, 0) + 1
                if upstream and kind == PUBLISH and len(body) > MAX_MESSAGE:
                    self.sim.log("blynk mqtt: message over 1024 bytes, connection closed")
                    break
                if upstream and kind == SUBSCRIBE and not all(
                        map(device_filter, filters(body))):
                    # a filter Blynk does not take: every filter refused, none forwarded
                    other.write(packet(0x90, body[:2] + b"\x80" * len(filters(body))))
                    await other.drain()
                    continue
                if not upstream and kind == CONNACK and body[1:2] == b"\x00":
                    writer.write(out)
                    target = self.sim.clouds["blynk"].redirect_at_login(other)
                    out = None if target is None else packet(
                        0x30, mqtt_string(b"downlink/redirect") + target.encode())
                elif kind == PUBLISH:
                    out = rewrite_publish(first, body, b"" if upstream else prefix,
                                          prefix if upstream else b"")
                elif upstream and kind in (SUBSCRIBE, UNSUBSCRIBE):
                    out = rewrite_filters(first, body, prefix, kind == SUBSCRIBE)
                if out:
                    writer.write(out)
                    await writer.drain()
        except (ValueError, struct.error, IndexError, asyncio.IncompleteReadError,
                ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            writer.close()


def device_filter(f):
    """Whether Blynk takes this topic filter from a device: under downlink/, with
    no single-level wildcard (+) and the multi-level one (#) only at its end."""
    return f.startswith(b"downlink/") and b"+" not in f and b"#" not in f[:-1]


def filters(body):
    """The topic filters of a SUBSCRIBE body."""
    out, pos = [], 2
    while pos < len(body):
        (n,) = struct.unpack_from(">H", body, pos)
        out.append(body[pos + 2 : pos + 2 + n])
        pos += 3 + n
    return out


def _recv_exactly(s, n):
    """n bytes from socket s, or fewer if it closes first."""
    got = b""
    while len(got) < n and (more := s.recv(n - len(got))):
        got += more
    return got


def publish(port, username, password, topic, payload, retain=False, qos=0):
    """Publish one message (QoS 0, or 1: acknowledged by Mosquitto before this
    returns) to Mosquitto as a cloudsim-internal client."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        body = mqtt_string(b"MQTT") + bytes((4, 0xC2)) + struct.pack(">H", 30)
        body += mqtt_string(b"cloudsim-" + secrets.token_hex(4).encode())
        body += mqtt_string(username.encode()) + mqtt_string(password.encode())
        s.sendall(packet(0x10, body))
        ack = _recv_exactly(s, 4)
        if ack[:2] != b"\x20\x02" or ack[3:] != b"\x00":
            raise OSError(f"broker refused cloudsim's own login: {ack!r}")
        s.sendall(packet(0x30 | (2 if qos else 0) | (1 if retain else 0),
                         mqtt_string(topic.encode()) + (b"\x00\x01" if qos else b"")
                         + payload.encode()))
        if qos:
            ack = _recv_exactly(s, 4)
            if ack != b"\x40\x02\x00\x01":
                raise OSError(f"broker did not acknowledge cloudsim's QoS 1 message: {ack!r}")
        s.sendall(b"\xe0\x00")
