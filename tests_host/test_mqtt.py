"""onboard.mqtt under the Unix port: through Mosquitto, and against fake
brokers that misbehave."""

import itertools
import json
import socket
import threading

import pytest

_ids = itertools.count()

CLIENT = """
import json, time, tls
from onboard.mqtt import MQTTClient, MQTTException
from onboard.http import der

def ctx(path):
    c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    c.verify_mode = tls.CERT_REQUIRED
    c.load_verify_locations(der(open(path, "rb").read()))
    return c

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


def test_connect_subscribe_and_qos0_qos1_both_ways_through_mosquitto(mpy, broker, user):
    out = run(mpy, f"""
a = MQTTClient("dev-a", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               keepalive=30, timeout=5)
b = MQTTClient("app-b", "127.0.0.1", {broker.mqtt_port}, user={user!r}, password={user!r},
               keepalive=30, timeout=5)
got_a, got_b = [], []
a.set_callback(lambda t, m: got_a.append([t.decode(), m.decode()]))
b.set_callback(lambda t, m: got_b.append([t.decode(), m.decode()]))
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


def test_tls_with_another_ca_fails_with_a_tls_error(mpy, broker, user, tmp_path):
    from cloudsim.pki import CA
    (tmp_path / "other.pem").write_bytes(CA("another").pem())
    out = run(mpy, f"""
c = MQTTClient("dev-tls", "127.0.0.1", {broker.mqtts_port}, user={user!r}, password={user!r},
               ssl=ctx({str(tmp_path / "other.pem")!r}), timeout=5)
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

    def __init__(self, script):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        conn, _ = self.sock.accept()
        try:
            conn.settimeout(30)
            conn.recv(4096)
            self.script(conn)
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            conn.close()
            self.done.set()

    def close(self):
        self.sock.close()


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
def test_misbehaving_broker_raises_within_the_timeout(mpy, fake, stage):
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
    assert last["s"] <= 3.0
    if fake == "nothing" and stage == "wait_msg":
        assert last == {"ok": "None", "s": last["s"]}  # nothing came: no packet, no error
    else:
        assert last["error"] in ("ProtocolError", "Timeout"), last
        assert "MemoryError" not in json.dumps(out)


def test_qos1_publish_without_puback_times_out(mpy):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, timeout=2)
c.connect()
attempt(lambda: c.publish("t", "x", qos=1))
""")
    broker.close()
    assert out[0]["error"] == "Timeout"
    assert out[0]["message"] == "127.0.0.1: puback: timed out"
    assert out[0]["s"] <= 3.0


def test_missing_pingresp_is_noticed(mpy):
    broker = FakeBroker(lambda c: c.sendall(CONNACK))
    out = run(mpy, f"""
c = MQTTClient("dev", "127.0.0.1", {broker.port}, keepalive=1, timeout=1)
c.connect()
for _ in range(10):
    try:
        c.wait_msg()
    except Exception as e:
        result(error=type(e).__name__, message=str(e))
        break
""")
    broker.close()
    assert out == [{"error": "Timeout", "message": "127.0.0.1: ping: no PINGRESP"}]


def test_repr_never_shows_the_password(mpy):
    out = run(mpy, """
c = MQTTClient("dev", "127.0.0.1", 1883, user="u", password="pa55-5ecret")
result(r=repr(c))
""")
    assert out == [{"r": "<MQTTClient 127.0.0.1:1883>"}]
