"""Host-test harness: run lib/ under MicroPython's Unix port.

The `mpy` fixture runs a MicroPython snippet or file with lib/, boards/unix/,
tests_device/ (shared MicroPython test helpers) and tests_host/mpy/ on
MICROPYPATH, returns what it printed, and on failure fails the test with the
MicroPython traceback.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the lib/ under test: under `onboard mutate`, a mutated copy of it
LIB = Path(os.environ.get("ONBOARD_LIB") or ROOT / "lib")
MICROPYPATH = [
    ".frozen",
    str(LIB),
    str(ROOT / "boards" / "unix"),
    str(ROOT / "tests_device"),
    str(ROOT / "tests_host" / "mpy"),
]


def micropython_binary():
    """MICROPYTHON from the environment, else the one beside this Python."""
    found = os.environ.get("MICROPYTHON")
    if not found:
        beside = Path(sys.executable).with_name("micropython")
        found = str(beside) if beside.exists() else shutil.which("micropython")
    if not found:
        pytest.exit("no MicroPython Unix port: run `make setup` or set MICROPYTHON", 2)
    return found


def _tail(text, lines=60):
    # The Unix port prints an uncaught exception's traceback on stdout.
    return "\n".join(text.splitlines()[-lines:]) + "\n"


@dataclass
class Run:
    stdout: str
    stderr: str
    returncode: int

    @property
    def lines(self):
        return self.stdout.splitlines()


class MicroPython:
    def __init__(self, workdir: Path):
        self.binary = micropython_binary()
        self.workdir = workdir
        self._count = 0

    def env(self, extra_path=()):
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join([*MICROPYPATH, *map(str, extra_path)])
        return env

    def run(self, code=None, *, file=None, args=(), heapsize=None, timeout=120,
            check=True, extra_path=()):
        """Run a snippet (dedented) or a file; return a Run."""
        if code is not None:
            self._count += 1
            file = self.workdir / f"snippet_{self._count}.py"
            file.write_text(textwrap.dedent(code))
        cmd = [self.binary]
        if heapsize:
            cmd += ["-X", f"heapsize={heapsize}"]
        cmd += [str(file), *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=self.workdir, env=self.env(extra_path))
        run = Run(proc.stdout, proc.stderr, proc.returncode)
        if check and proc.returncode != 0:
            pytest.fail(
                f"MicroPython exited with {proc.returncode} running {file}\n"
                f"--- output, ending with MicroPython's traceback ---\n"
                f"{_tail(proc.stdout)}{proc.stderr}",
                pytrace=False,
            )
        return run


@pytest.fixture
def mpy(tmp_path):
    return MicroPython(tmp_path)


def json_cases(mpy, script, cases):
    """Run script, which reads the list in cases.json and prints one JSON
    line for each, over cases: the decoded lines."""
    (mpy.workdir / "cases.json").write_text(json.dumps(cases))
    return [json.loads(line) for line in mpy.run(script).lines]


@pytest.fixture(scope="session")
def mpy_in(tmp_path_factory):
    """mpy_in(name): a MicroPython runner in a new folder, for module fixtures."""
    return lambda name: MicroPython(tmp_path_factory.mktemp(name))


@pytest.fixture
def report(request):
    """report(text): a line shown in the test run's closing summary (carried
    in the test's report, so it reaches the summary from pytest-xdist workers)."""
    return lambda text: request.node.user_properties.append(("figure", text))


def pytest_configure(config):
    config.addinivalue_line("markers", "device_traceback: a device of this test is expected "
                            "to print a traceback (its logs are not checked for one)")


def pytest_terminal_summary(terminalreporter):
    figures = [text for reports in terminalreporter.stats.values() for r in reports
               if getattr(r, "when", None) == "call"
               for key, text in getattr(r, "user_properties", ()) if key == "figure"]
    if figures:
        terminalreporter.section("figures")
        for line in sorted(figures):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory):
    """A CA (ca.pem) and a server certificate for 127.0.0.1 and localhost."""
    from cloudsim.pki import CA

    d = tmp_path_factory.mktemp("pki")
    ca = CA()
    (d / "ca.pem").write_bytes(ca.pem())
    ca.write_server(d, "server")
    return d


@pytest.fixture(scope="session")
def broker(tmp_path_factory, pki_dir):
    """One Mosquitto for the session, plain and TLS listeners on loopback."""
    from cloudsim.broker import Broker

    b = Broker(tmp_path_factory.mktemp("mosquitto"), pki_dir / "server.pem",
               pki_dir / "server.key").start()
    yield b
    b.stop()


@pytest.fixture
def device(tmp_path, request):
    """device(config=..., radio=...) starts a simulated device; all are stopped after."""
    from onboard_cli.simdevice import Device

    started = []

    def start(same_as=None, **kw):
        # same_as: boot again on that device's flash (after a kill or a stop)
        folder = same_as.dir if same_as else tmp_path / f"device{len(started)}"
        folder.mkdir(exist_ok=True)
        d = Device(folder, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()  # (also what is left of a runner that ended: see Device.stop)
    if request.node.get_closest_marker("device_traceback"):
        return
    for d in started:
        log = d.log_path.read_text()
        for sign in ("Task exception wasn't retrieved", "Traceback (most recent call last)"):
            assert sign not in log, f"{sign} in {d.log_path}:\n{log[-3000:]}"


@pytest.fixture(scope="session")
def cloudsim(tmp_path_factory):
    """One cloudsim (HTTPS API, Mosquitto, Blynk's MQTT front) for the session."""
    from cloudsim.app import Cloudsim

    sim = Cloudsim(tmp_path_factory.mktemp("cloudsim"), log=lambda line: None).start()
    yield sim
    sim.stop()


KEEPALIVE = 0  # the test subscriber's, seconds (0: none)


class Subscription:
    """A subscriber on the broker (cloudsim's own login), ready once made:
    messages sent after it exists are never missed. It asks for no keepalive
    (0): it never pings, and with one the broker closed it after 1.5 times
    that of silence (an emulated board beside a busy host took over 90 s to
    come online while its test's subscriber waited). It subscribes at qos
    (0 or 1) and acknowledges what comes at QoS 1; self.qos lists the QoS each
    message came at, which the broker makes the lower of the sender's and
    this subscription's. login (user, password) and port: another user's, on
    another of the broker's ports (its login front's)."""

    def __init__(self, sim, topic, timeout=10, qos=0, login=None, port=None):
        import socket
        import struct

        from cloudsim.mqttfront import mqtt_string, packet

        self.sock = socket.create_connection(("127.0.0.1", port or sim.broker.mqtt_port),
                                             timeout=timeout)
        user, password = login or sim.internal
        self.sock.sendall(packet(0x10, mqtt_string(b"MQTT") + bytes((4, 0xC2))
                                 + struct.pack(">H", KEEPALIVE) + mqtt_string(b"test-reader")
                                 + mqtt_string(user.encode()) + mqtt_string(password.encode())))
        self.sock.sendall(packet(0x82, b"\x00\x01" + mqtt_string(topic.encode()) + bytes((qos,))))
        self.buf = b""
        self.qos = []
        self.suback = False
        self.pending = []  # messages that came with the SUBACK (retained ones)
        while not self.suback:
            self.pending += self._read()

    def _read(self):
        import struct
        part = self.sock.recv(4096)
        if not part:
            raise AssertionError("broker closed the test subscription")
        self.buf += part
        out = []
        while len(self.buf) >= 2:
            n, shift, i = 0, 0, 1
            while self.buf[i] & 0x80:
                n |= (self.buf[i] & 0x7F) << shift
                shift += 7
                i += 1
            n |= self.buf[i] << shift
            if len(self.buf) < i + 1 + n:
                break
            first, body = self.buf[0], self.buf[i + 1 : i + 1 + n]
            self.buf = self.buf[i + 1 + n :]
            if first >> 4 == 9:
                self.suback = True
            if first >> 4 == 3:
                tl = struct.unpack(">H", body[:2])[0]
                qos, payload = first >> 1 & 3, body[2 + tl :]
                if qos:  # a packet id before the payload, to acknowledge
                    self.sock.sendall(b"\x40\x02" + payload[:2])
                    payload = payload[2:]
                self.qos.append(qos)
                out.append((body[2 : 2 + tl].decode(), payload))
        return out

    def messages(self, count=1):
        out, self.pending = self.pending, []
        while len(out) < count:
            out += self._read()
        return out

    def close(self):
        self.sock.close()


def broker_messages(sim, topic, count=1, timeout=10):
    """Retained messages on a broker topic (or ones that arrive within timeout)."""
    sub = Subscription(sim, topic, timeout)
    try:
        return sub.messages(count)
    finally:
        sub.close()
