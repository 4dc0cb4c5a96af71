"""onboard.mqtt under the Unix port: through Mosquitto, and against fake
brokers that misbehave."""

import itertools
import json
import socket
import threading
import time

import pytest

_ids = itertools.count()

CLIENT = """
import json, time
from onboard.mqtt import MQTTClient, MQTTException
from onboard.net import tls_context as ctx

def result(**kw):
    print(json.dumps(kw))

def attempt(fn):
    t0 = time.ticks_ms()
    try:
        r = fn()
        result(ok=repr(r), s=time.ticks_diff(time.ticks_ms(), t0) / 1000)
    except Exception as e:
        result(error=type(e).__name__, message=str(e), args=[str(a) for a in e.args],
               s=time.ticks_diff(time.ticks_ms(), t0) / 1000)
"""


def run(mpy, code):
    return [json.loads(line) for line in mpy.run(CLIENT + code).lines if line.startswith("{")]


@pytest.fixture
def user(broker):
    name = f"tok-{next(_ids)}-5ecret"
    broker.allow(name, name)
    return name


def two_clients(broker, user, device="MQTTClient"):
    """Source for a device client a (of class `device`) and an application
    client b, each recording what reaches it in got_a / got_b."""
    return f"""
a = {device}("dev-a", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               keepalive=30, timeout=5)
b = MQTTClient("app-b", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               keepalive=30, timeout=5)
got_a, got_b = [], []
a.set_callback(lambda t, m: got_a.append([t.decode(), m.decode()]))
b.set_callback(lambda t, m: got_b.append([t.decode(), m.decode()]))
"""


def test_connect_subscribe_and_qos0_qos1_both_ways_through_mosquitto(mpy, broker, user):
    out = run(mpy, two_clients(broker, user) + """
a.connect(); b.connect()
a.subscribe("down/a", qos=1); b.subscribe("up/a", qos=1)
a.publish("up/a", "q0 up"); a.publish("up/a", "q1 up", qos=1)
b.publish("down/a", "q0 down"); b.publish("down/a", "q1 down", qos=1)
while len(got_b) < 2: b.wait_msg()
while len(got_a) < 2: a.wait_msg()
result(a=sorted(got_a), b=sorted(got_b))
a.disconnect(); b.disconnect()
""")
    assert out == [{"a": [["down/a", "q0 down"], ["down/a", "q1 down"]],
                    "b": [["up/a", "q0 up"], ["up/a", "q1 up"]]}]


def test_tls_connection_verifies_the_broker(mpy, broker, user, pki_dir):
    out = run(mpy, f"""
c = MQTTClient("dev-tls", "127.0.0.1", {broker.mqtts_port}, user={user!r}, password={user!r},
               ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=5)
attempt(c.connect)
c.disconnect()
""")
    assert out[0]["ok"] == "0"


def test_over_tls_a_wait_that_nothing_comes_in_returns_none_and_keeps_the_session(mpy, broker,
                                                                                  user, pki_dir):
    # (a TLS socket whose read times out is dead for good: the wait must not read then)
    out = run(mpy, f"""
c = MQTTClient("dev-idle", "127.0.0.1", {broker.mqtts_port}, user={user!r},
               password={user!r}, ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=5)
c.connect()
got = []
c.set_callback(lambda t, m: got.append(m.decode()))
c.subscribe("idle/echo", qos=1)
attempt(lambda: c.wait_msg(300))
c.publish("idle/echo", "still here", qos=1)
while not got: c.wait_msg()
result(got=got)
c.disconnect()
""")
    assert out == [{"ok": "None", "s": out[0].get("s")}, {"got": ["still here"]}]


# made as the runtime does (onboard.net.tls_context), or as a blocking client's user may,
# with onboard.ca.context(ca) alone: verifying is its default, insecure only when asked
@pytest.mark.parametrize("make", ["ctx", "context"])
def test_tls_with_another_ca_fails_with_a_tls_error(mpy, broker, user, tmp_path, make):
    from cloudsim.pki import CA
    (tmp_path / "other.pem").write_bytes(CA("another").pem())
    out = run(mpy, f"""
from onboard.ca import context
c = MQTTClient("dev-tls", "127.0.0.1", {broker.mqtts_port}, user={user!r}, password={user!r},
               ssl={make}({str(tmp_path / "other.pem")!r}), timeout=5)
attempt(c.connect)
""")
    assert out[0]["error"] == "TLSError"


def test_keepalive_pings_hold_the_connection_over_three_periods(mpy, broker, user):
    # keepalive 1 s: Mosquitto drops a silent client after 1.5 s
    out = run(mpy, f"""
c = MQTTClient("dev-ka", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               keepalive=1, timeout=5)
got = []
c.set_callback(lambda t, m: got.append(m.decode()))
c.connect()
c.subscribe("ka/self", qos=1)
pongs = 0
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < 3500:
    if c.wait_msg() == 0xD0:
        pongs += 1
c.publish("ka/self", "still here", qos=1)
while not got: c.wait_msg()
result(pongs=pongs, got=got)
c.disconnect()
""")
    assert out[0]["got"] == ["still here"]
    assert out[0]["pongs"] >= 3


def test_revoked_credentials_get_connack_5(mpy, broker, user):
    broker.revoke(user)
    out = run(mpy, f"""
c = MQTTClient("dev-rev", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               timeout=5)
attempt(c.connect)
""")
    assert out[0]["error"] == "MQTTException"
    assert out[0]["args"] in (["5"], ["4"])
    assert user not in json.dumps(out)


def test_replaced_password_refuses_the_old_one(mpy, broker, user):
    broker.allow(user, "new-password-123")
    out = run(mpy, f"""
for pw in ({user!r}, "new-password-123"):
    c = MQTTClient("dev-rep", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password=pw,
                   timeout=5)
    attempt(c.connect)
    c.disconnect()
""")
    assert out[0]["error"] == "MQTTException"
    assert out[1]["ok"] == "0"


# Fake brokers ---------------------------------------------------------------

class FakeBroker:
    """Accepts one client, reads its CONNECT, then does what it is told."""

    def __init__(self, script, port=0, tls=None):
        # tls: a folder with server.pem and server.key: TLS on the accepted connection
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.got = b""  # what the client sent after the script ran
        self.connect = b""  # its CONNECT packet
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        conn, _ = self.sock.accept()
        try:
            conn.settimeout(30)
            self._serve(conn)
        except (OSError, EOFError):
            pass
        finally:
            conn.close()
            self.done.set()

    def _context(self):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.tls / "server.pem", self.tls / "server.key")
        return ctx

    def _serve(self, conn):
        if self.tls:
            conn = self._context().wrap_socket(conn, server_side=True)
        self.connect = read_packet(conn)  # CONNECT (or a TLS ClientHello: then part of it)
        self.script(conn)
        while part := conn.recv(4096):
            self.got += part

    def close(self):
        self.sock.close()


def read_packet(conn):
    """One MQTT packet from conn, however it was split (or what came before EOF);
    a TLS ClientHello (record type 0x16) as its first read brought it."""
    data = b""
    while not data.startswith(b"\x16\x03"):
        try:
            (op, body), = packets(data)
            return data
        except (IndexError, ValueError):
            pass
        part = conn.recv(4096)
        if not part:
            return data
        data += part
    return data


CONNACK = b"\x20\x02\x00\x00"
FAKES = {
    "garbage": lambda c: c.sendall(b"\xff\xfe\xfd\xfc\xfb\xfa"),
    "oversized": lambda c: c.sendall(b"\x30\xff\xff\xff\x7f"),
    "endless-length": lambda c: c.sendall(b"\x30\xff\xff\xff\xff\xff"),
    "nothing": lambda c: None,
    "short-connack": lambda c: c.sendall(b"\x20\x01\x00"),
}


@pytest.mark.parametrize("stage", ["connect", "wait_msg"])
@pytest.mark.parametrize("fake", sorted(FAKES))
def test_misbehaving_broker_raises_instead_of_hanging(mpy, fake, stage):
    script = FAKES[fake]
    if stage == "wait_msg":
        def script(c, s=script):
            c.sendall(CONNACK)
            s(c)
    broker = FakeBroker(script)
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, user="u", password="p", timeout=2)
attempt(c.connect)
if {stage == "wait_msg"}:
    attempt(c.wait_msg)
""")
    broker.close()
    last = out[-1]
    if fake == "nothing" and stage == "wait_msg":
        assert last == {"ok": "None", "s": last["s"]}  # nothing came: no packet, no error
    else:
        assert last["error"] in ("ProtocolError", "Timeout"), last
        assert "MemoryError" not in json.dumps(out)


def test_a_packet_dripping_in_slower_than_the_timeout_is_a_timeout(mpy):
    # each byte comes within the timeout, the whole packet does not: the
    # deadline bounds the operation, not each read
    packet = publish(b"drip", b"slow", 4)

    def script(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(CONNACK)
        for i in range(len(packet)):
            c.sendall(packet[i : i + 1])
            time.sleep(0.25)
    broker = FakeBroker(script)
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=1)
got = []
c.set_callback(lambda t, m: got.append(m.decode()))
c.connect()
attempt(c.wait_msg)
result(got=got)
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("Timeout", "127.0.0.1: read: timed out")
    assert out[1] == {"got": []}


def test_publish_before_connect_is_a_net_error(mpy):
    out = run(mpy, """
from onboard.errors import NetError
c = MQTTClient("dev", "127.0.0.1", 1883, timeout=1)
try:
    c.publish("t", "x")
except Exception as e:
    result(net_error=isinstance(e, NetError), message=str(e))
""")
    assert out == [{"net_error": True, "message": "127.0.0.1: publish: error 107"}]


def test_a_blocking_session_loads_neither_onboard_net_nor_onboard_errors(mpy):
    # the blocking client's RAM: the transport and the error kinds stay out
    # until something fails
    broker = FakeBroker(lambda c: c.sendall(CONNACK + b"\x40\x02\x00\x01"))
    out = mpy.run(f"""
import json, sys
from onboard.mqtt import MQTTClient
c = MQTTClient("dev", "127.0.0.1", {broker.port}, user="u", password="p", timeout=5)
c.connect()
c.publish("t", "x" * 64, qos=1)
c.disconnect()
print(json.dumps(sorted(m for m in sys.modules if m.startswith("onboard"))))
""").lines
    broker.close()
    assert json.loads(out[-1]) == ["onboard", "onboard.mqtt", "onboard.mqttbase"]


def test_repr_never_shows_the_password(mpy):
    out = run(mpy, """
c = MQTTClient("dev", "127.0.0.1", 1883, user="u", password="pa55-5ecret")
result(r=repr(c))
""")
    assert "MQTTClient" in out[0]["r"] and "5ecret" not in out[0]["r"]


def packets(data):
    """[(first byte, body)] of a stream of MQTT packets."""
    out = []
    while data:
        n = shift = 0
        i = 1
        while True:
            n |= (data[i] & 0x7F) << shift
            if not data[i] & 0x80:
                break
            shift += 7
            i += 1
        if len(data) < i + 1 + n:
            raise ValueError("incomplete")
        out.append((data[0], data[i + 1 : i + 1 + n]))
        data = data[i + 1 + n :]
    return out


def publish(topic, payload, pid):
    body = len(topic).to_bytes(2, "big") + topic + pid.to_bytes(2, "big") + payload
    return bytes([0x32]) + remaining(len(body)) + body


def remaining(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


# the same client steps, blocking or on asyncio
PATHS = {"sync": """
Client = MQTTClient
def steps(c, n):
    c.connect()
    while len(got) < n:
        c.wait_msg()
    c.disconnect()
""", "async": """
import asyncio
from onboard.amqtt import MQTTClient as Client
def steps(c, n):
    async def main():
        await c.aconnect()
        while len(got) < n:
            await c.await_msg(5000)
        c.disconnect()
    asyncio.run(main())
"""}


def test_qos1_message_is_acknowledged_after_the_callback_returns(mpy):
    # the callback publishes "seen": on the wire that must come before the PUBACK
    broker = FakeBroker(lambda c: c.sendall(CONNACK + publish(b"down", b"hello", 7)))
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
got = []
def cb(t, m):
    c.publish(b"seen", m)
    got.append(m.decode())
c.set_callback(cb)
c.connect()
c.wait_msg()
c.disconnect()
result(got=got)
""")
    assert broker.done.wait(10)
    broker.close()
    assert out == [{"got": ["hello"]}]
    sent = packets(broker.got)
    assert [op for op, _ in sent] == [0x30, 0x40, 0xE0]  # PUBLISH "seen", PUBACK, DISCONNECT
    assert sent[1][1] == b"\x00\x07"


@pytest.mark.parametrize("path", sorted(PATHS))
def test_callback_that_raises_is_logged_unacknowledged_and_the_session_stays(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(CONNACK + publish(b"down", b"pay-5ecret", 7)
                                            + publish(b"down", b"second", 8)))
    out = mpy.run(CLIENT + PATHS[path] + f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
got = []
def cb(t, m):
    got.append(m.decode())
    if len(got) == 1:
        raise ValueError("bad payload " + m.decode())
c.set_callback(cb)
steps(c, 2)
result(got=got)
""").lines
    assert broker.done.wait(10)
    broker.close()
    assert json.loads(out[-1]) == {"got": ["pay-5ecret", "second"]}
    assert "E mqtt: callback raised ValueError" in out
    assert "5ecret" not in "\n".join(out[:-1])
    # only the second message is acknowledged: the broker will deliver the first again
    assert packets(broker.got) == [(0x40, b"\x00\x08"), (0xE0, b"")]


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("size", [20000, 2100000], ids=["3-byte-length", "4-byte-length"])
def test_long_packets_split_across_reads_are_parsed(mpy, path, size):
    payload = bytes(range(256)) * (size // 256) + b"end"
    packet = publish(b"big", payload, 9)

    def script(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(CONNACK)
        # the fixed header a byte at a time, then the rest in uneven pieces
        for i in range(5):
            c.sendall(packet[i : i + 1])
            time.sleep(0.05)
        for i in range(5, len(packet), 70001):
            c.sendall(packet[i : i + 70001])
    broker = FakeBroker(script)
    out = mpy.run(CLIENT + PATHS[path] + f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=10, max_packet=3000000)
got = []
def cb(t, m):
    got.append([t.decode(), len(m), m[:3].hex(), m[-3:].decode()])
c.set_callback(cb)
steps(c, 1)
result(got=got)
""", heapsize=32 * 1024 * 1024).lines
    assert broker.done.wait(10)
    broker.close()
    assert json.loads(out[-1]) == {"got": [["big", len(payload), "000102", "end"]]}
    assert packets(broker.got)[0] == (0x40, b"\x00\x09")


@pytest.mark.parametrize("suback", [b"\x90\x02\x00\x01", b"\x90\x01\x00", b"\x90\x00"])
def test_short_suback_is_a_protocol_error(mpy, suback):
    def script(c):
        c.sendall(CONNACK)
        read_packet(c)  # SUBSCRIBE
        c.sendall(suback)
    broker = FakeBroker(script)
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
c.connect()
attempt(lambda: c.subscribe("t", 1))
""")
    broker.close()
    assert out[0]["error"] == "ProtocolError", out


def test_short_puback_is_a_protocol_error(mpy):
    def script(c):
        c.sendall(CONNACK)
        read_packet(c)  # PUBLISH
        c.sendall(b"\x40\x01\x00")
    broker = FakeBroker(script)
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
c.connect()
attempt(lambda: c.publish("t", "x", qos=1))
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("ProtocolError",
                                                    "127.0.0.1: puback: short ack")


def test_a_server_name_that_does_not_resolve_raises_dns_error(mpy):
    host = "a" * 64 + ".invalid"  # refused by the resolver itself: no packet leaves the host
    out = run(mpy, f"""
c = MQTTClient("dev", {host!r}, 1883, user="u", password="p-5ecret", timeout=2)
attempt(c.connect)
""")
    assert (out[0]["error"], out[0]["message"]) == ("DNSError",
                                                    f"{host}: dns: name lookup failed")


# The asyncio path ----------------------------------------------------------------

ASYNC = """
import asyncio
from onboard.amqtt import MQTTClient as AClient
def arun(coro):
    async def timed():
        t0 = time.ticks_ms()
        try:
            r = await coro
            result(ok=repr(r), s=time.ticks_diff(time.ticks_ms(), t0) / 1000)
        except Exception as e:
            result(error=type(e).__name__, message=str(e),
                   s=time.ticks_diff(time.ticks_ms(), t0) / 1000)
    asyncio.run(timed())
"""


def test_async_connect_subscribe_publish_both_ways_through_mosquitto(mpy, broker, user):
    out = run(mpy, ASYNC + two_clients(broker, user, "AClient") + """
async def main():
    await a.aconnect(); b.connect()
    await a.asubscribe("down/a", qos=1); b.subscribe("up/a", qos=1)
    await a.apublish("up/a", "q0 up"); await a.apublish("up/a", "q1 up", qos=1)
    b.publish("down/a", "q0 down"); b.publish("down/a", "q1 down", qos=1)
    while len(got_b) < 2: b.wait_msg()
    while len(got_a) < 2: await a.await_msg(5000)
    a.disconnect(); b.disconnect()
asyncio.run(main())
result(a=sorted(got_a), b=sorted(got_b))
""")
    assert out == [{"a": [["down/a", "q0 down"], ["down/a", "q1 down"]],
                    "b": [["up/a", "q0 up"], ["up/a", "q1 up"]]}]


def test_async_tls_connect_verifies_the_broker(mpy, broker, user, pki_dir, tmp_path):
    from cloudsim.pki import CA
    (tmp_path / "other.pem").write_bytes(CA("another").pem())
    out = run(mpy, ASYNC + f"""
for ca in ({str(pki_dir / "ca.pem")!r}, {str(tmp_path / "other.pem")!r}):
    c = AClient("dev-tls", "127.0.0.1", {broker.mqtts_port}, user={user!r},
                   password={user!r}, ssl=ctx(ca), timeout=5)
    arun(c.aconnect())
    c.disconnect()
""")
    assert out[0]["ok"] == "0"
    assert out[1]["error"] == "TLSError"
    assert out[1]["message"].startswith("127.0.0.1: tls: certificate refused: ")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_event_loop_runs_while_aconnect_waits_for_a_silent_broker(mpy, pki_dir, tls):
    broker = FakeBroker(lambda c: None)  # accepts TCP, reads, never answers
    out = run(mpy, ASYNC + f"""
c = AClient("dev", "127.0.0.1", {broker.port}, user="u", password="p",
               ssl=ctx({str(pki_dir / "ca.pem")!r}) if {tls} else None, timeout=2)
order = []
async def other():
    order.append("other task ran")
async def main():
    asyncio.create_task(other())
    try:
        await c.aconnect()
    except Exception as e:
        order.append(type(e).__name__ + ": " + str(e))
asyncio.run(main())
result(order=order)
""")
    broker.close()
    phase = "tls" if tls else "login"
    assert out == [{"order": ["other task ran", f"Timeout: 127.0.0.1: {phase}: timed out"]}]


def test_await_msg_sends_keepalive_pings_through_mosquitto(mpy, broker, user):
    out = run(mpy, ASYNC + f"""
c = AClient("dev-aka", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               keepalive=1, timeout=5)
got = []
c.set_callback(lambda t, m: got.append(m.decode()))
async def main():
    await c.aconnect()
    await c.asubscribe("aka/self", qos=1)
    pongs = 0
    while pongs < 3:
        if await c.await_msg(5000) == 0xD0:
            pongs += 1
    await c.apublish("aka/self", "still here", qos=1)
    while not got:
        await c.await_msg(5000)
    c.disconnect()
    return pongs
arun(main())
result(got=got)
""")
    assert out == [{"ok": "3", "s": out[0]["s"]}, {"got": ["still here"]}]


def connect_then_disconnect(port, path):
    """Client source: connect (blocking, or aconnect on asyncio), then disconnect()."""
    return f"""
c = (AClient if {path == "aconnect"} else MQTTClient)("dev", "127.0.0.1", {port}, timeout=5)
if {path == "aconnect"}:
    asyncio.run(c.aconnect())
else:
    c.connect()
c.disconnect()
"""


def test_an_asyncio_session_does_not_load_the_blocking_client(mpy):
    # the runtime's RAM: onboard.amqtt shares onboard.mqttbase, not onboard.mqtt
    broker = FakeBroker(lambda c: c.sendall(CONNACK + b"\x40\x02\x00\x01"))
    out = mpy.run(f"""
import asyncio, sys
from onboard.amqtt import MQTTClient
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
async def main():
    await c.aconnect()
    await c.apublish("t", "x", qos=1)
    c.disconnect()
asyncio.run(main())
print("onboard.mqtt" in sys.modules)
""").lines
    broker.close()
    assert out[-1] == "False"


@pytest.mark.parametrize("path", ["connect", "aconnect"])
def test_disconnect_sends_disconnect_after_either_connect(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run(mpy, ASYNC + connect_then_disconnect(broker.port, path))
    assert broker.done.wait(10)
    broker.close()
    assert broker.got == b"\xe0\x00"


@pytest.mark.parametrize("path", ["connect", "aconnect"])
def test_tls_handshake_cut_by_the_broker_is_a_net_error_not_tls(mpy, pki_dir, path):
    broker = FakeBroker(lambda c: c.close())  # reads the ClientHello, hangs up
    out = run(mpy, ASYNC + f"""
c = (AClient if {path == "aconnect"} else MQTTClient)(
    "dev", "127.0.0.1", {broker.port}, ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=5)
if {path == "aconnect"}:
    arun(c.aconnect())
else:
    attempt(c.connect)
""")
    broker.close()
    assert out[0]["error"] == "NetError"
    assert out[0]["message"].startswith("127.0.0.1: tls: error ")


@pytest.mark.parametrize("where,phase", [("handshake", "tls"), ("reply", "login")])
@pytest.mark.parametrize("path", ["connect", "aconnect"])
def test_a_tls_record_sent_a_byte_at_a_time_ends_in_timeout(mpy, pki_dir, path, where, phase):
    # the handshake, or the CONNACK in one record with a long PUBLISH after
    # it, a byte at a time: every raw read gets one, no record completes; the
    # deadline must bound the whole exchange (8 s for the CONNACK: the
    # handshake itself must end in time on a loaded machine)
    from servers import TrickledTLS

    publish = b"\x30\xaf\x02\x00\x01t" + b"x" * 300  # remaining length 303
    broker = TrickledTLS((pki_dir / "server.pem", pki_dir / "server.key"), where,
                         CONNACK + publish)
    try:
        out = run(mpy, ASYNC + f"""
c = (AClient if {path == "aconnect"} else MQTTClient)(
    "dev", "127.0.0.1", {broker.port}, ssl=ctx({str(pki_dir / "ca.pem")!r}),
    timeout={4 if where == "handshake" else 8})
if {path == "aconnect"}:
    arun(c.aconnect())
else:
    attempt(c.connect)
""")
    finally:
        broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("Timeout", f"127.0.0.1: {phase}: timed out")


@pytest.mark.parametrize("path", ["wait_msg", "await_msg"])
def test_a_broker_that_falls_silent_is_pinged_though_the_client_keeps_publishing(mpy, path):
    # CONNACK, then nothing: QoS 0 publishes every round keep the client
    # sending, but nothing comes back; with keepalive 2 s it pings once 1 s
    # passed without a packet from the broker, and no PINGRESP within the
    # timeout ends the session (60 rounds of 0.2 s: 12 s, six periods)
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    out = run(mpy, ASYNC + f"""
c = (AClient if {path == "await_msg"} else MQTTClient)(
    "dev", "127.0.0.1", {broker.port}, keepalive=2, timeout=3)
async def session():
    await c.aconnect()
    for i in range(60):
        await c.apublish(b"t", b"x")
        await c.await_msg(200)
def blocking():
    c.connect()
    for i in range(60):
        c.publish(b"t", b"x")
        c.wait_msg(200)
if {path == "await_msg"}:
    arun(session())
else:
    attempt(blocking)
""")
    assert broker.done.wait(10)
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("Timeout", "127.0.0.1: ping: no PINGRESP")
    assert b"\xc0\x00" in broker.got  # the PINGREQ


@pytest.mark.parametrize("path", ["wait_msg", "await_msg"])
def test_a_client_that_only_receives_still_pings_within_its_keepalive(mpy, path):
    # the broker pushes QoS 0 messages without pause (the client acks none):
    # the client hears it all the time but sends nothing, and the broker
    # needs a packet from it within the keepalive (MQTT 3.1.1, 3.1.2.10), so
    # it pings half a period after its CONNECT; the broker floods until the
    # client's next packet (a PINGREQ) or its hang-up after 3 s
    seen = []

    def flood(c):
        import select
        c.sendall(CONNACK)
        msg = bytes([0x30, 7]) + b"\x00\x04down" + b"x"
        while True:  # until the client's next packet, or its hang-up
            c.sendall(msg)
            if select.select([c], [], [], 0)[0]:
                got = b""
                while len(got) < 2 and (part := c.recv(2 - len(got))):
                    got += part
                seen.append(got)
                c.sendall(b"\xd0\x00")  # PINGRESP
                return

    broker = FakeBroker(flood)
    out = run(mpy, ASYNC + f"""
c = (AClient if {path == "await_msg"} else MQTTClient)(
    "dev", "127.0.0.1", {broker.port}, keepalive=1, timeout=3)
async def session():
    await c.aconnect()
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 3000:
        await c.await_msg(200)
    c.disconnect()
def blocking():
    c.connect()
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 3000:
        c.wait_msg(200)
    c.disconnect()
if {path == "await_msg"}:
    arun(session())
else:
    attempt(blocking)
""")
    assert broker.done.wait(30)
    broker.close()
    assert "error" not in out[0], out
    assert seen == [b"\xc0\x00"]  # a PINGREQ, the client's first packet after CONNECT


def test_await_msg_0_handles_a_packet_that_has_already_arrived(mpy):
    # CONNACK and PUBLISH leave in one segment: once the CONNACK is read, the
    # PUBLISH is waiting in the socket, and await_msg(0) must take it
    broker = FakeBroker(lambda c: c.sendall(CONNACK + publish(b"down", b"ready", 3)))
    out = run(mpy, ASYNC + f"""
c = AClient("dev", "127.0.0.1", {broker.port}, timeout=5)
got = []
c.set_callback(lambda t, m: got.append(m.decode()))
async def main():
    await c.aconnect()
    op = await c.await_msg(0)
    c.disconnect()
    return op
arun(main())
result(got=got)
""")
    assert broker.done.wait(10)
    broker.close()
    assert out[0]["ok"] == str(0x32) and out[1] == {"got": ["ready"]}
    assert packets(broker.got) == [(0x40, b"\x00\x03"), (0xE0, b"")]


def test_the_asyncio_client_has_no_blocking_calls(mpy):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    out = run(mpy, ASYNC + f"""
c = AClient("dev", "127.0.0.1", {broker.port}, timeout=5)
async def main():
    await c.aconnect()
    c.publish("t", "x")
arun(main())
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == (
        "AttributeError", "'MQTTClient' object has no attribute 'publish'")


def test_aconnect_refused_by_connack_raises_mqtt_exception_with_the_code(mpy):
    broker = FakeBroker(lambda c: c.sendall(b"\x20\x02\x00\x05"))
    out = run(mpy, ASYNC + f"""
c = AClient("dev", "127.0.0.1", {broker.port}, user="u", password="p-5ecret", timeout=5)
arun(c.aconnect())
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("MQTTException", "5")


@pytest.mark.parametrize("path", ["connect", "aconnect"])
def test_disconnect_closes_the_socket_while_the_client_lives_on(mpy, path):
    # an asyncio Stream's close() only marks it on MicroPython: the socket must close too
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    assert close_seen(mpy, broker, connect_then_disconnect(broker.port, path)) == (True, True)


def test_a_failed_operation_closes_the_connection_without_disconnect(mpy):
    def script(c):
        c.sendall(CONNACK)
        read_packet(c)  # the PUBLISH, never acknowledged
    broker = FakeBroker(script)
    assert close_seen(mpy, broker, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=1)
c.connect()
attempt(lambda: c.publish("t", "m", qos=1))
""") == (True, True)
    assert broker.got == b""  # closed, and no DISCONNECT: the session's will stays armed


def close_seen(mpy, broker, code):
    """Run code in a client process kept alive after it; return (the broker
    saw the connection close, the client's process still lived then): both
    True when the client closed it, not the process ending."""
    import subprocess
    script = mpy.workdir / "live_on.py"
    script.write_text(CLIENT + ASYNC + code + """
import sys
print("DONE")
sys.stdin.readline()  # alive until the test has looked
""")
    proc = subprocess.Popen([mpy.binary, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=mpy.env(), cwd=mpy.workdir)
    try:
        while (line := proc.stdout.readline()) and line.strip() != "DONE":
            pass
        assert line.strip() == "DONE"  # the code ran to its end
        return broker.done.wait(10), proc.poll() is None
    finally:
        proc.communicate("\n", timeout=10)
        broker.close()


def connect_fields(packet):
    """(keepalive, [client id, user, password]) of a CONNECT with both logins."""
    i = 1
    while packet[i] & 0x80:
        i += 1
    body = packet[i + 1:]
    assert body[:7] == b"\x00\x04MQTT\x04" and body[7] & 0xC0 == 0xC0
    return int.from_bytes(body[8:10], "big"), strings(body[10:])


def strings(data):
    """The length-prefixed UTF-8 strings that data holds, in order."""
    out = []
    while data:
        n = int.from_bytes(data[:2], "big")
        out.append(data[2:2 + n].decode())
        data = data[2 + n:]
    return out


def test_connect_sends_utf8_logins_with_their_byte_lengths_and_no_keepalive_by_default(mpy):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run(mpy, f"""
c = MQTTClient("d\u00e9v", "127.0.0.1", {broker.port}, user="us\u00e9r", password="p\u00e4ss",
               timeout=5)
c.connect()
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert connect_fields(broker.connect) == (0, ["d\u00e9v", "us\u00e9r", "p\u00e4ss"])


def test_without_a_port_the_client_dials_1883(mpy):
    # The behaviour is the well-known port itself, so it is bound here (loopback
    # only); where it is taken or this user may not bind it, nothing to test.
    try:
        broker = FakeBroker(lambda c: c.sendall(CONNACK), port=1883)
    except OSError as e:
        pytest.skip(f"cannot listen on 127.0.0.1:1883: {e}")
    out = run(mpy, """
c = MQTTClient("dev", "127.0.0.1", timeout=5)
attempt(c.connect)
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert out[0].get("ok") == "0" and broker.connect.startswith(b"\x10")


@pytest.mark.parametrize("path", ["sync", "async"])
@pytest.mark.parametrize("extra,delivered", [(0, True), (1, False)], ids=["4096", "4097"])
def test_packets_up_to_the_default_max_packet_of_4096_bytes_are_accepted(mpy, extra,
                                                                         delivered, path):
    topic = b"t"
    body_len = 4096 + extra  # remaining length: topic length, topic, packet id, payload
    packet = publish(topic, b"x" * (body_len - 2 - len(topic) - 2), 5)
    broker = FakeBroker(lambda c: c.sendall(CONNACK + packet))
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
got = []
c.set_callback(lambda t, m: got.append(len(m)))
call(c, "connect")
attempt(lambda: call(c, "wait_msg", 5000))
result(got=got)
""")
    broker.close()
    if delivered:
        assert out[-1] == {"got": [4096 - 5]}
    else:
        assert (out[0]["error"], out[0]["message"]) == (
            "ProtocolError", "127.0.0.1: read: packet over max_packet")


def test_with_tls_and_without_a_port_the_client_dials_8883(mpy, pki_dir):
    # as test_without_a_port_the_client_dials_1883: the port itself is the behaviour
    try:
        broker = FakeBroker(lambda c: None, port=8883)
    except OSError as e:
        pytest.skip(f"cannot listen on 127.0.0.1:8883: {e}")
    run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=3)
attempt(c.connect)
""")
    assert broker.done.wait(10)
    broker.close()
    assert broker.connect.startswith(b"\x16\x03")  # a TLS ClientHello reached 8883


def test_packet_ids_start_at_1_and_count_up(mpy):
    def script(c):
        c.sendall(CONNACK)
        for pid in (1, 2):
            read_packet(c)
            c.sendall(b"\x90\x03" + pid.to_bytes(2, "big") + b"\x01")
    broker = FakeBroker(script)
    run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
c.connect()
attempt(lambda: c.subscribe("a", 1))
attempt(lambda: c.subscribe("b", 1))
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert [op for op, _ in packets(broker.got)] == [0xE0]  # both SUBACKs matched their ids


@pytest.mark.parametrize("args,flags", [('"gone"', 0x04), ('"gone", retain=True, qos=1', 0x2C)],
                         ids=["defaults", "retained-qos1"])
def test_the_last_will_goes_in_connect_with_its_flags(mpy, args, flags):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
c.set_last_will("will/d\\u00e9v", {args})
c.connect()
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    (op, body), = packets(broker.connect)
    assert (op, body[7], strings(body[10:])) == (0x10, 0x02 | flags,
                                                  ["dev", "will/d\u00e9v", "gone"])


def test_an_unknown_attribute_is_an_attribute_error(mpy):
    out = run(mpy, """
c = MQTTClient("dev", "127.0.0.1", 1, timeout=1)
result(has=[hasattr(c, n) for n in ("connect", "check_msg", "wait_msg", "nope")])
attempt(lambda: c.nope)
""")
    assert out[0] == {"has": [True, True, True, False]}
    assert out[1]["error"] == "AttributeError"


# Edges found by mutation (issue 13) -------------------------------------------

# each runs the same steps blocking or on asyncio: call(c, "publish", ...) is
# c.publish(...) or c.apublish(...) run to its end
BOTH = {"sync": """
Client = MQTTClient
def call(c, name, *args, **kw):
    return getattr(c, name)(*args, **kw)
""", "async": """
import asyncio
from onboard.amqtt import MQTTClient as Client
def call(c, name, *args, **kw):
    name = {"wait_msg": "await_msg", "subscribe": "asubscribe"}.get(name, "a" + name)
    return asyncio.run(getattr(c, name)(*args, **kw))
"""}


def run_both(mpy, path, code, **kw):
    out = mpy.run(CLIENT + BOTH[path] + code, **kw).lines
    return [json.loads(line) for line in out if line.startswith("{")]


@pytest.mark.parametrize("path", sorted(BOTH))
def test_ping_before_connect_is_a_net_error_naming_ping(mpy, path):
    out = run_both(mpy, path, """
c = Client("dev", "127.0.0.1", 1883, timeout=1)
attempt(lambda: call(c, "ping"))
""")
    assert (out[0]["error"], out[0]["message"]) == ("NetError", "127.0.0.1: ping: error 107")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_publish_before_connect_is_a_net_error_naming_publish(mpy, path):
    out = run_both(mpy, path, """
c = Client("dev", "127.0.0.1", 1883, timeout=1)
attempt(lambda: call(c, "publish", "t", "x"))
""")
    assert (out[0]["error"], out[0]["message"]) == ("NetError", "127.0.0.1: publish: error 107")


def test_a_refused_reconnect_names_the_connect_phase(mpy):
    # (blocking only: on asyncio the refusal of a loopback connect surfaces at
    # the first send, in the login phase)
    def script(c):
        broker.close()  # nothing listens any more: the next connect is refused
        c.sendall(CONNACK)
    broker = FakeBroker(script)
    out = run_both(mpy, "sync", f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
call(c, "publish", "t", "x")
attempt(lambda: call(c, "connect"))
""")
    assert out[0]["error"] == "NetError"
    assert out[0]["message"].startswith("127.0.0.1: connect: error "), out


@pytest.mark.parametrize("path", sorted(BOTH))
def test_publish_with_qos_2_is_a_value_error(mpy, path):
    out = run_both(mpy, path, """
c = Client("dev", "127.0.0.1", 1883, timeout=1)
attempt(lambda: call(c, "publish", "t", "x", qos=2))
""")
    assert (out[0]["error"], out[0]["message"]) == ("ValueError", "qos: 0 or 1")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_refused_subscription_raises_mqtt_exception_0x80(mpy, path):
    def script(c):
        c.sendall(CONNACK)
        read_packet(c)  # SUBSCRIBE, packet id 1
        c.sendall(b"\x90\x03\x00\x01\x80")
    broker = FakeBroker(script)
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
attempt(lambda: call(c, "subscribe", "t", 1))
""")
    broker.close()
    assert (out[0]["error"], out[0]["args"]) == ("MQTTException", ["128"])


@pytest.mark.parametrize("path", sorted(BOTH))
def test_connect_returns_1_when_the_broker_kept_the_session(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(b"\x20\x02\x01\x00"))  # session present
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
attempt(lambda: call(c, "connect", False))
""")
    broker.close()
    assert out[0]["ok"] == "1"


def read_error(mpy, path, behaviour):
    """(kind, message) of the error of one wait_msg after connecting to a
    broker that behaves so once connected."""
    broker = FakeBroker(behaviour)
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
attempt(lambda: call(c, "wait_msg", 5000))
""")
    broker.close()
    return out[0]["error"], out[0]["message"]


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_remaining_length_over_4_bytes_is_a_protocol_error(mpy, path):
    assert read_error(mpy, path, lambda c: c.sendall(CONNACK + b"\x30\xff\xff\xff\xff\x01")) \
        == ("ProtocolError", "127.0.0.1: read: bad packet 30")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_qos1_publish_without_puback_is_a_timeout_naming_puback(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=2)
call(c, "connect")
attempt(lambda: call(c, "publish", "t", "x", qos=1))
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("Timeout", "127.0.0.1: puback: timed out")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_missing_pingresp_is_a_timeout_naming_ping(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))  # never answers PINGREQ
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, keepalive=1, timeout=1)
call(c, "connect")
for _ in range(10):
    try:
        call(c, "wait_msg", 5000)
    except Exception as e:
        result(error=type(e).__name__, message=str(e))
        break
""")
    broker.close()
    assert out == [{"error": "Timeout", "message": "127.0.0.1: ping: no PINGRESP"}]


@pytest.mark.parametrize("path", sorted(BOTH))
def test_acks_that_nobody_waits_for_are_read_and_ignored(mpy, path):
    # a PUBACK, a SUBACK and an UNSUBACK no operation waits for (late, or
    # duplicated) are skipped: the message after them still arrives
    broker = FakeBroker(lambda c: c.sendall(CONNACK + b"\x40\x02\x00\x09" + b"\x90\x03\x00\x09\x00"
                                            + b"\xb0\x02\x00\x09" + publish(b"t", b"after", 4)))
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
got = []
c.set_callback(lambda t, m: got.append(m.decode()))
call(c, "connect")
result(ops=[call(c, "wait_msg", 5000) for _ in range(4)], got=got)
""")
    broker.close()
    assert out == [{"ops": [0x40, 0x90, 0xB0, 0x32], "got": ["after"]}]


@pytest.mark.parametrize("packet", [b"\x32\x04\x00\x05ab", b"\x34\x06\x00\x01t\x00\x01x",
                                    b"\xf0\x00"],
                         ids=["publish-topic-past-its-end", "publish-qos2", "reserved-type-f0"])
def test_a_malformed_or_unknown_packet_is_a_protocol_error_naming_its_type(mpy, packet):
    broker = FakeBroker(lambda c: c.sendall(CONNACK + packet))
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
c.connect()
attempt(c.wait_msg)
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == (
        "ProtocolError", "127.0.0.1: read: bad packet %02x" % packet[0])


def test_packets_from_the_client_carry_the_shortest_remaining_length(mpy):
    # MQTT 3.1.1 section 2.2.3, at the one/two-byte edge and at two and three bytes
    # (a broker may take only the shortest form)
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
c.connect()
for n, x in ((124, "a"), (125, "b"), (200, "c"), (20000, "d")):
    c.publish("t", x * n)
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    heads = {b"a": b"\x7f", b"b": b"\x80\x01", b"c": b"\xcb\x01", b"d": b"\xa3\x9c\x01"}
    assert broker.got == b"".join(b"\x30" + head + b"\x00\x01t" + x * n for (x, head), n in
                                  zip(heads.items(), (124, 125, 200, 20000))) + b"\xe0\x00"


def test_connect_carries_a_keepalive_over_255_seconds_in_two_bytes(mpy):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, user="u", password="p", keepalive=1000,
               timeout=5)
c.connect()
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert connect_fields(broker.connect) == (1000, ["dev", "u", "p"])


def test_check_msg_returns_none_every_time_while_nothing_has_come(mpy):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, keepalive=60000, timeout=5)
c.connect()
attempt(lambda: [c.check_msg() for _ in range(3000)].count(None))
c.disconnect()
""")
    broker.close()
    assert out[0]["ok"] == "3000"


@pytest.mark.parametrize("path", sorted(BOTH))
def test_wait_msg_0_over_tls_returns_none_when_nothing_came(mpy, broker, user, pki_dir, path):
    out = run_both(mpy, path, f"""
from onboard.net import tls_context as ctx
c = Client("dev-tls-idle", "127.0.0.1", {broker.mqtts_port}, user={user!r}, password={user!r},
           ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=5)
call(c, "connect")
attempt(lambda: call(c, "wait_msg", 0))
c.disconnect()
""")
    assert out[0]["ok"] == "None"



def acking_broker(count):
    """A fake broker script: acknowledge count QoS 1 PUBLISHes one by one,
    recording their packet ids in the returned list."""
    ids = []

    def script(c):
        c.sendall(CONNACK)
        for _ in range(count):
            (op, body), = packets(read_packet(c))
            pid = body[2 + int.from_bytes(body[:2], "big"):][:2]
            ids.append(int.from_bytes(pid, "big"))
            c.sendall(b"\x40\x02" + pid)
    return ids, script


@pytest.mark.parametrize("path", sorted(BOTH))
def test_packet_ids_wrap_from_65535_to_1(mpy, path):
    # 65,534 round trips take minutes: the client's count is set just short
    # of the end, then the wire shows the ids it sends
    ids, script = acking_broker(2)
    broker = FakeBroker(script)
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
c.pid = 65534
attempt(lambda: [call(c, "publish", "t", "x", qos=1) for _ in range(2)])
""")
    broker.close()
    assert out[0]["ok"] == "[None, None]"
    assert ids == [65535, 1]


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_broker_silent_after_the_tls_handshake_is_a_login_timeout(mpy, pki_dir, path):
    # timeout=5 as the other TLS connects here: the handshake must fit in it under
    # make test's load (at 2 s, CI once saw "tls: timed out")
    broker = FakeBroker(lambda c: None, tls=pki_dir)  # reads CONNECT, never answers
    out = run_both(mpy, path, f"""
from onboard.net import tls_context as ctx
c = Client("dev", "127.0.0.1", {broker.port}, ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=5)
attempt(lambda: call(c, "connect"))
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("Timeout", "127.0.0.1: login: timed out")
    assert broker.done.wait(30)  # its thread has read what came (the client hung up)
    assert broker.connect.startswith(b"\x10")  # the CONNECT came through TLS


def test_await_msg_without_a_wait_returns_the_packet_that_comes(mpy):
    broker = FakeBroker(lambda c: c.sendall(CONNACK + publish(b"down", b"hi", 3)))
    out = run(mpy, ASYNC + f"""
c = AClient("dev", "127.0.0.1", {broker.port}, timeout=5)
async def main():
    await c.aconnect()
    return await c.await_msg()
arun(main())
""")
    broker.close()
    assert out[0]["ok"] == str(0x32)


def test_await_msg_0_returns_none_without_waiting_for_the_keepalive(mpy):
    # a keepalive of 60000 s: waiting for its ping would outlast the broker
    # (which hangs up after 30 s) and the test
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    out = run(mpy, ASYNC + f"""
c = AClient("dev", "127.0.0.1", {broker.port}, keepalive=60000, timeout=5)
async def main():
    await c.aconnect()
    return await c.await_msg(0)
arun(main())
""")
    broker.close()
    assert out[0]["ok"] == "None"


@pytest.mark.parametrize("part", [b"", b"\x30\x05\x00"], ids=["between", "inside-a-packet"])
@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_broker_that_hangs_up_is_a_closed_connection(mpy, path, part):
    # (part: what comes of a packet before the hang-up, its length saying 5 bytes)
    assert read_error(mpy, path, lambda c: (c.sendall(CONNACK + part),
                                            c.shutdown(socket.SHUT_WR))) \
        == ("ProtocolError", "127.0.0.1: read: connection closed")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_no_ping_while_the_keepalive_is_not_half_over(mpy, path):
    # the keepalive counts from the last packet sent (here CONNECT): a check
    # right after connecting sends nothing
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, keepalive=60, timeout=5)
call(c, "connect")
call(c, "wait_msg", 0)
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert broker.got == b"\xe0\x00"  # DISCONNECT only, no PINGREQ


@pytest.mark.parametrize("path", sorted(BOTH))
def test_publish_sets_the_qos_and_retain_flags_of_its_first_byte(mpy, path):
    seen = []

    def script(c):
        c.sendall(CONNACK)
        data = b""
        while len(seen) < 3:  # QoS 0, retained, QoS 1 (packet id 1), however they came
            data += c.recv(4096)
            try:
                seen[:] = packets(data)
            except (IndexError, ValueError):
                pass
        c.sendall(b"\x40\x02\x00\x01")
    broker = FakeBroker(script)
    run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
call(c, "publish", "t", "0")
call(c, "publish", "t", "r", True)
call(c, "publish", "t", "1", qos=1)
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert seen == [(0x30, b"\x00\x01t0"), (0x31, b"\x00\x01tr"), (0x32, b"\x00\x01t\x00\x011")]


def test_check_msg_returns_a_packet_that_has_already_arrived(mpy):
    # CONNACK and PUBLISH leave in one segment: once connected, the PUBLISH
    # is waiting in the socket and check_msg() must take it
    broker = FakeBroker(lambda c: c.sendall(CONNACK + publish(b"down", b"ready", 3)))
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=5)
got = []
c.set_callback(lambda t, m: got.append(m.decode()))
c.connect()
attempt(c.check_msg)
result(got=got)
""")
    broker.close()
    assert out == [{"ok": str(0x32), "s": out[0]["s"]}, {"got": ["ready"]}]


def test_connect_with_no_time_left_times_out_before_dialling(mpy):
    # timeout 0: the deadline has passed before the TCP connect, which is
    # then not even started (a non-blocking connect would fail otherwise)
    listener = socket.create_server(("127.0.0.1", 0))  # a free port that would answer
    try:
        out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {listener.getsockname()[1]}, timeout=0)
attempt(c.connect)
""")
    finally:
        listener.close()
    assert (out[0]["error"], out[0]["message"]) == ("Timeout", "127.0.0.1: connect: timed out")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_the_timeout_given_to_connect_replaces_the_clients(mpy, path):
    # the client's own timeout (100 s) outlasts the silent broker, which
    # hangs up after 30 s: only connect's 1 s ends in a Timeout
    broker = FakeBroker(lambda c: None)
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=100)
attempt(lambda: call(c, "connect", True, 1))
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("Timeout", "127.0.0.1: login: timed out")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_reconnecting_closes_the_old_connection_without_disconnect(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))  # accepts this one connection only
    assert close_seen(mpy, broker, BOTH[path] + f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
attempt(lambda: call(c, "connect", True, 1))  # (no broker answers this one)
""") == (True, True)
    assert broker.got == b""  # no DISCONNECT: the old session's will stays armed


@pytest.mark.parametrize("path", sorted(BOTH))
@pytest.mark.parametrize("args,flag", [("", 0x02), ("False", 0)], ids=["default", "kept"])
def test_connect_asks_for_a_clean_session_unless_told_not_to(mpy, path, args, flag):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect", {args})
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    (op, body), = packets(broker.connect)
    assert (op, body[7]) == (0x10, flag)


@pytest.mark.parametrize("path", sorted(BOTH))
def test_ping_sends_a_pingreq(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
call(c, "ping")
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert broker.got == b"\xc0\x00\xe0\x00"  # PINGREQ, DISCONNECT


@pytest.mark.parametrize("path", sorted(BOTH))
def test_subscribe_asks_for_qos_0_by_default(mpy, path):
    seen = []

    def script(c):
        c.sendall(CONNACK)
        seen.extend(packets(read_packet(c)))  # SUBSCRIBE, packet id 1
        c.sendall(b"\x90\x03\x00\x01\x00")
    broker = FakeBroker(script)
    run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
call(c, "connect")
call(c, "subscribe", "t")
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert seen == [(0x82, b"\x00\x01" + b"\x00\x01t" + b"\x00")]  # id 1, topic "t", QoS 0


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_wait_whose_time_has_already_passed_returns_none_at_once_over_tls(mpy, broker, user,
                                                                            pki_dir, path):
    # a wait computed from a deadline already behind (negative), on a TLS link with
    # nothing pending: no packet, as a wait of 0 (select's poll would wait for ever)
    out = run_both(mpy, path, f"""
from onboard.net import tls_context as ctx
c = Client("dev-tls-late", "127.0.0.1", {broker.mqtts_port}, user={user!r}, password={user!r},
           ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=5)
call(c, "connect")
attempt(lambda: call(c, "wait_msg", -1000))
c.disconnect()
""", timeout=60)
    assert out[0]["ok"] == "None"


class SplitRecordTLS(FakeBroker):
    """A TLS server that answers the CONNECT with its CONNACK and, in the same
    write, the first half of the TLS record of a PUBLISH; the rest of that
    record once the client has sent another packet."""

    PUBLISH = b"\x30\x08\x00\x01tsplit"  # QoS 0, topic "t"
    half = b""  # the part of the record sent with the CONNACK

    @staticmethod
    def _step(conn, tls, inc, out, step):
        # step (the handshake, or reading one MQTT packet) through the BIOs
        import ssl
        data = b""
        while True:
            try:
                data += step() or b""
                if step == tls.do_handshake or packets(data):
                    return
            except ssl.SSLWantReadError:
                pass
            except (IndexError, ValueError):  # an incomplete packet: read on
                continue
            conn.sendall(out.read())  # (TLS 1.3: the session tickets too)
            part = conn.recv(4096)
            if not part:
                raise EOFError
            inc.write(part)

    def _serve(self, conn):
        import ssl
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._context().wrap_bio(inc, out, server_side=True)
        self._step(conn, tls, inc, out, tls.do_handshake)
        self._step(conn, tls, inc, out, lambda: tls.read(4096))  # CONNECT
        tls.write(CONNACK)
        connack = out.read()
        tls.write(self.PUBLISH)
        record = out.read()
        self.half = record[: len(record) // 2]
        conn.sendall(connack + self.half)
        self._step(conn, tls, inc, out, lambda: tls.read(4096))  # the client's go
        conn.sendall(record[len(self.half):])
        while conn.recv(4096):  # until the client hangs up
            pass


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_record_that_has_come_only_in_part_is_no_message_yet_over_tls(mpy, pki_dir, path):
    # a wait of 0 (check_msg) while half a TLS record is there: None, the session
    # intact; the message is delivered once the rest comes
    broker = SplitRecordTLS(None, tls=pki_dir)
    out = run_both(mpy, path, f"""
from onboard.net import tls_context as ctx
got = []
c = Client("dev", "127.0.0.1", {broker.port}, ssl=ctx({str(pki_dir / "ca.pem")!r}), timeout=5)
c.set_callback(lambda t, m: got.append([t.decode(), m.decode()]))
call(c, "connect")
attempt(lambda: call(c, "wait_msg", 0))
call(c, "publish", "go", "")
attempt(lambda: call(c, "wait_msg"))
result(got=got)
c.disconnect()
""")
    assert broker.done.wait(30)
    broker.close()
    assert broker.half  # part of the record came with the CONNACK
    assert out[:2] == [{"ok": "None", "s": out[0]["s"]}, {"ok": "48", "s": out[1]["s"]}]
    assert out[2] == {"got": [["t", "split"]]}


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_boards_socket_timeout_on_a_wait_is_no_packet_not_a_failure(mpy, path):
    # lwIP's ETIMEDOUT is 116 (Linux's 110): an ESP32's socket whose timeout passes
    # raises it, which no loopback socket here can; a stand-in socket raises it
    out = run_both(mpy, path, """
class Lwip:
    s = None
    def settimeout(self, t):
        pass
    def recv(self, n):
        raise OSError(116)
    read = recv
    def close(self):
        pass
c = Client("dev", "127.0.0.1", 1883, timeout=5)
if Client is MQTTClient:
    c.sock = c.raw = Lwip()
else:
    from onboard import net
    c.sock = net.Conn()
    c.sock.buf = bytearray()
    c.sock.s = Lwip()
    c.sock.s.s = Lwip()
attempt(lambda: call(c, "wait_msg", 100))
""")
    assert out[0]["ok"] == "None"


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_retained_message_is_delivered_on_subscribe(mpy, broker, user, path):
    topic = f"kept/{user}/{path}"
    out = run_both(mpy, path, f"""
b = MQTTClient("app-r", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               timeout=5)
b.connect()
b.publish({topic!r}, "kept", retain=True, qos=1)
b.disconnect()
got = []
a = Client("dev-r", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r}, timeout=5)
a.set_callback(lambda t, m: got.append([t.decode(), m.decode()]))
call(a, "connect")
call(a, "subscribe", {topic!r})
attempt(lambda: call(a, "wait_msg"))
result(got=got)
a.disconnect()
""")
    assert out[0]["ok"] == str(0x31)  # a PUBLISH with its retain flag
    assert out[1] == {"got": [[topic, "kept"]]}


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_qos1_message_with_an_empty_payload_is_delivered_and_acknowledged(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(CONNACK + publish(b"t", b"", 7)))
    out = run_both(mpy, path, f"""
got = []
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
c.set_callback(lambda t, m: got.append([t.decode(), m.decode()]))
call(c, "connect")
attempt(lambda: call(c, "wait_msg"))
result(got=got)
c.disconnect()
""")
    assert broker.done.wait(10)
    broker.close()
    assert out[1] == {"got": [["t", ""]]}
    assert packets(broker.got) == [(0x40, b"\x00\x07"), (0xE0, b"")]  # PUBACK 7, DISCONNECT


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_packet_before_the_connack_is_a_protocol_error_naming_it(mpy, path):
    broker = FakeBroker(lambda c: c.sendall(b"\x30\x03\x00\x01t" + CONNACK))
    out = run_both(mpy, path, f"""
c = Client("dev", "127.0.0.1", {broker.port}, timeout=5)
attempt(lambda: call(c, "connect"))
""")
    broker.close()
    assert (out[0]["error"], out[0]["message"]) == ("ProtocolError",
                                                    "127.0.0.1: login: bad packet 30")


def pinged(mpy, path, broker, *, connect_to=None):
    """A client (timeout 1 s) that connects to broker and pings it; then
    (connect_to) connects to that one instead; then, past the first ping's
    deadline, what wait_msg(0) gives."""
    return run_both(mpy, path, f"""
import time
c = Client("dev", "127.0.0.1", {broker.port}, timeout=1)
call(c, "connect")
call(c, "ping")
if {connect_to}:
    c.port = {connect_to}
    call(c, "connect")
else:
    attempt(lambda: call(c, "wait_msg"))
time.sleep_ms(1100)  # the first ping's PINGRESP deadline passes
attempt(lambda: call(c, "wait_msg", 0))
c.disconnect()
""")


@pytest.mark.parametrize("path", sorted(BOTH))
def test_an_answered_ping_is_owed_nothing_once_its_deadline_passes(mpy, path):
    def script(c):
        c.sendall(CONNACK)
        assert packets(read_packet(c)) == [(0xC0, b"")]
        c.sendall(b"\xd0\x00")  # PINGRESP
    broker = FakeBroker(script)
    out = pinged(mpy, path, broker)
    broker.close()
    assert [o.get("ok", o.get("error")) for o in out] == [str(0xD0), "None"]


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_reconnect_forgets_the_pingresp_the_old_connection_owed(mpy, path):
    silent = FakeBroker(lambda c: c.sendall(CONNACK))  # answers no PINGREQ
    other = FakeBroker(lambda c: c.sendall(CONNACK))
    out = pinged(mpy, path, silent, connect_to=other.port)
    silent.close()
    other.close()
    assert [o.get("ok", o.get("error")) for o in out] == ["None"]


def tls_big_publish(mpy, pki_dir, script, size, timeout, path):
    """A TLS publish of size bytes (blocking or on asyncio: path) to a fake
    broker running script, small socket buffers at both ends (a board's lwIP
    send buffer is a few KB: ESP-IDF's default is 5,744 bytes), so the
    client's TLS writes find the socket full (mbedTLS: "want write"): (its
    outcome, the broker)."""
    broker = FakeBroker(script, tls=pki_dir)
    broker.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    out = run_both(mpy, path, f"""
from onboard.net import tls_context as ctx
c = Client("dev", "127.0.0.1", {broker.port}, ssl=ctx({str(pki_dir / "ca.pem")!r}),
           timeout={timeout})
call(c, "connect")
(c.raw if Client is MQTTClient else c.sock.raw).setsockopt(1, 7, 4096)  # SOL_SOCKET, SO_SNDBUF
attempt(lambda: call(c, "publish", b"big", b"x" * {size}))
c.disconnect()
""")
    return out[0], broker


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_tls_publish_to_a_broker_that_stops_reading_ends_in_timeout(mpy, pki_dir, path):
    # nothing frees the full socket: the wait to write again is bounded by
    # the publish's deadline as any other
    stop = threading.Event()

    def script(c):
        c.sendall(CONNACK)
        stop.wait(600)  # reads nothing more, open until the test ends (past mpy.run's limit)

    try:
        out, broker = tls_big_publish(mpy, pki_dir, script, 200000, 2, path)
    finally:
        stop.set()
    broker.close()
    assert (out.get("error"), out.get("message")) == (
        "Timeout", "127.0.0.1: publish: timed out"), out


@pytest.mark.parametrize("path", sorted(BOTH))
def test_a_tls_publish_larger_than_the_socket_holds_goes_out_as_the_broker_reads(mpy, pki_dir,
                                                                                path):
    # the client must wait until it can write again, not for something to
    # read (nothing comes)
    got = {}

    def script(c):
        c.sendall(CONNACK)
        got["publish"] = read_packet(c)

    out, broker = tls_big_publish(mpy, pki_dir, script, 200000, 10, path)
    assert broker.done.wait(30)
    broker.close()
    assert out.get("ok") == "None", out
    assert packets(got["publish"]) == [(0x30, len(b"big").to_bytes(2, "big") + b"big"
                                        + b"x" * 200000)]
