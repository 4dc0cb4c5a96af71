"""`onboard esp32 run`: onboard on the emulated ESP32 (QEMU, stock MicroPython v1.25.0).

The tests that boot the emulator run under `make test-esp32` (ONBOARD_ESP32=1),
the power cuts there too and alone under `make test-esp32-cuts`
(ONBOARD_ESP32_CUTS=1); the others run everywhere. The emulator's speed
follows the host's load: nothing here asserts a duration, everything waits
for an event with a generous overall timeout."""

import ipaddress
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from servers import Relay, pipe
from test_memory import online_holds_nothing_of

from onboard_cli import esp32
from onboard_cli.paths import ROOT, ToolError, mpremote
from onboard_cli.ports import free_port

ONBOARD = str(Path(sys.executable).with_name("onboard"))
BANNER = re.compile(r"MicroPython v1\.25\.0 on \S+; .*ESP32")


def _emulator_missing():
    try:
        esp32.emulator()
    except ToolError as e:
        return str(e)
    return None


def _needs(variables, target):
    missing = _emulator_missing()
    return pytest.mark.skipif(
        not any(os.environ.get(v) == "1" for v in variables) or bool(missing),
        reason=missing or f"boots the emulator: run by `make {target}`")


emulated = _needs(("ONBOARD_ESP32",), "test-esp32")
cuts = _needs(("ONBOARD_ESP32", "ONBOARD_ESP32_CUTS"), "test-esp32 or make test-esp32-cuts")
# whole lives (portal, Wi-Fi, clock, TLS, cloud) and the certificate dates: in
# test-esp32, and alone under `make test-esp32-lives`
lives = _needs(("ONBOARD_ESP32", "ONBOARD_ESP32_LIVES"), "test-esp32 or make test-esp32-lives")


class Board:
    """One `onboard esp32 run` in the background: its ready line, events and log."""

    def __init__(self, flash, *args, timeout=240):
        self.relays = Path(str(flash) + ".relays")  # what QEMU's relays did (onboard esp32 run)
        self.relays_from = self.relays.stat().st_size if self.relays.exists() else 0
        self.proc = subprocess.Popen([ONBOARD, "esp32", "run", "--flash", str(flash), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines = queue.Queue()
        self.events = []
        self.log = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.log.append),
                         daemon=True).start()
        self.ready = self.next_line(timeout)
        if not (self.ready and "repl" in self.ready):
            self.close()  # never leave an emulator behind
            raise AssertionError("no ready line: " + self.log_text())

    @staticmethod
    def _read(stream, put):
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def log_text(self):
        log = [line for line in self.log if line is not None]  # (None: the stream's end)
        lines = log if len(log) <= 120 else log[:80] + ["..."] + log[-40:]
        if self.relays.exists():
            with open(self.relays) as f:
                f.seek(self.relays_from)
                lines = lines + ["relays of this boot:", *f.read().splitlines()[-30:]]
        return "\n".join(lines)

    def next_line(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            return None
        value = json.loads(line)
        if "state" in value:
            self.events.append(value)
        return value

    def wait_state(self, state, timeout=240, until=lambda event: True):
        """The first event in this state (None: in any) for which until(event) holds."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if state in (None, event["state"]) and until(event):
                    return event
            left = deadline - time.monotonic()
            assert left > 0 and self.next_line(left) is not None, (
                f"no {state}; events {[e for e in self.events if 'retry_in' not in e][-8:]} "
                f"{self.events[-3:]}; log:\n{self.log_text()}")

    def mpremote(self, *args, timeout=180):
        return subprocess.run(mpremote() + ["connect", self.ready["repl"], *args],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def power_cut(self):
        """SIGKILL QEMU, then wait for this run to end: the flash is as the board left it."""
        os.kill(self.ready["qemu_pid"], signal.SIGKILL)
        return self.proc.wait(60)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def qemu_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def boards():
    started = []

    def start(flash, *args, **kw):
        board = Board(flash, *args, **kw)
        started.append(board)
        return board

    yield start
    for board in started:
        board.close()
        assert not qemu_alive(board.ready["qemu_pid"]), "an emulator outlived its run"


# -- everywhere: the pieces that need no emulator -------------------------------------------

def test_cloudsim_certificates_name_the_address_the_emulated_board_dials():
    from cryptography import x509

    from cloudsim.pki import CA

    cert = x509.load_pem_x509_certificate(CA().issue()[0])
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(alt.get_values_for_type(x509.IPAddress)) >= {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("192.168.4.100")}
    assert "localhost" in alt.get_values_for_type(x509.DNSName)


def test_cloudsim_issues_a_certificate_with_the_validity_dates_asked_for():
    import datetime

    from cryptography import x509

    from cloudsim.pki import CA

    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    end = datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc)
    cert = x509.load_pem_x509_certificate(CA().issue(not_before=start, not_after=end)[0])
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, end)


def test_a_certificate_ending_before_it_starts_is_refused_naming_not_after():
    import datetime

    from cloudsim.pki import CA

    day = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(ValueError, match="not_after"):
        CA().issue(not_before=day, not_after=day)


def test_a_forward_without_a_port_is_refused_naming_the_option():
    with pytest.raises(ToolError, match="--forward mqtts: give NAME=HOSTPORT"):
        esp32.parse_forwards(["mqtts"])


def test_a_forward_with_a_port_that_is_no_number_is_refused_naming_the_option():
    with pytest.raises(ToolError, match="--forward mqtts=41883:x: give NAME=HOSTPORT"):
        esp32.parse_forwards(["mqtts=41883:x"])


def test_two_host_ports_forwarded_to_one_board_port_are_refused():
    with pytest.raises(ToolError, match="--forward b=41884:8883: the board's port 8883 is "
                                        "forwarded to host port 41883 already"):
        esp32.parse_forwards(["a=41883:8883", "b=41884:8883"])


def test_each_forward_is_a_guestfwd_at_the_fixed_guest_address():
    forwards = esp32.parse_forwards(["mqtts=8883", "https=8443"])
    cmd = esp32.qemu_command("qemu", "roms", "f.bin", 1, 2, forwards)
    nic = cmd[cmd.index("-nic") + 1]
    relay = f"-cmd:{sys.executable} -m onboard_cli.esp32 relay"
    assert f"guestfwd=tcp:192.168.4.100:8883{relay} 8883," in nic + ","
    assert f"guestfwd=tcp:192.168.4.100:8443{relay} 8443," in nic + ","
    assert "hostfwd=tcp:127.0.0.1:2-192.168.4.15:80" in nic


def test_a_forward_to_another_board_port_relays_that_port_to_the_host_port():
    forwards = esp32.parse_forwards(["default=41883:8883"])
    cmd = esp32.qemu_command("qemu", "roms", "f.bin", 1, 2, forwards)
    nic = cmd[cmd.index("-nic") + 1]
    relay = f"-cmd:{sys.executable} -m onboard_cli.esp32 relay"
    assert f",guestfwd=tcp:192.168.4.100:8883{relay} 41883" in nic


def test_files_written_into_a_flash_image_read_back(tmp_path):
    flash = tmp_path / "flash.bin"
    flash.write_bytes(b"\xff" * esp32.FLASH_SIZE)
    (tmp_path / "a.json").write_text('{"x": 1}')
    esp32.write_files(flash, {"onboard/store.mpy": tmp_path / "a.json",
                              "config.json": tmp_path / "a.json"})
    out = tmp_path / "out"
    assert esp32.extract(flash, out) == ["config.json", "onboard/store.mpy"]
    assert (out / "onboard" / "store.mpy").read_text() == '{"x": 1}'
    assert flash.stat().st_size == esp32.FLASH_SIZE


def test_files_written_into_a_flash_image_keep_the_files_it_held(tmp_path):
    flash = tmp_path / "flash.bin"
    flash.write_bytes(b"\xff" * esp32.FLASH_SIZE)
    (tmp_path / "a").write_text("a")
    esp32.write_files(flash, {"mine.txt": tmp_path / "a"})
    esp32.write_files(flash, {"main.py": tmp_path / "a"})
    assert esp32.extract(flash, tmp_path / "out") == ["main.py", "mine.txt"]


def test_the_relay_carries_both_ways_and_closes(tmp_path):
    # what QEMU does for a guestfwd: the board's connection on stdin/stdout
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got = []

    def serve():
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                data += conn.recv(100)
            got.append(data)
            conn.sendall(b"pong\n")

    threading.Thread(target=serve, daemon=True).start()
    board, relay_end = socket.socketpair()
    proc = subprocess.Popen([sys.executable, "-m", "onboard_cli.esp32", "relay", str(port)],
                            stdin=relay_end, stdout=relay_end, stderr=relay_end)
    relay_end.close()
    board.sendall(b"ping\n")
    board.shutdown(socket.SHUT_WR)
    reply = b""
    board.settimeout(30)
    while chunk := board.recv(100):
        reply += chunk
    assert (got, reply) == ([b"ping\n"], b"pong\n")
    assert proc.wait(30) == 0
    server.close()


def test_without_the_emulator_esp32_run_says_so_in_one_line(tmp_path):
    env = dict(os.environ, QEMU=str(tmp_path / "nothing"))
    proc = subprocess.run([ONBOARD, "esp32", "run", "--flash", str(tmp_path / "f.bin")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"onboard esp32: no emulator at {tmp_path / 'nothing'}: set QEMU= (and QEMU_ROMS=, "
        "ESP32_FIRMWARE=)"]


def test_esp32_run_refuses_a_config_the_board_would_refuse_before_anything_starts(tmp_path):
    # (QEMU points nowhere: reached, it would say so instead)
    config = tmp_path / "config.json"
    config.write_text('{"portal": {"idle_timeout_s": "ten"}}')
    env = dict(os.environ, QEMU=str(tmp_path / "nothing"))
    proc = subprocess.run([ONBOARD, "esp32", "run", "--flash", str(tmp_path / "f.bin"),
                           "--config", str(config)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"onboard esp32: {config}: portal.idle_timeout_s must be a number from 1 to 86400 "
        "(the board would show ERROR 700)"]
    assert not (tmp_path / "f.bin").exists()


# -- on the emulated board (make test-esp32) ----------------------------------------------------


@emulated
def test_an_esp32_run_killed_outright_takes_its_emulator_with_it(tmp_path, boards):
    board = boards(tmp_path / "flash.bin", "--bare")
    pid = board.ready["qemu_pid"]
    assert qemu_alive(pid)
    board.proc.kill()  # SIGKILL: no cleanup of its own runs
    board.proc.wait(30)
    deadline = time.monotonic() + 60
    while qemu_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not qemu_alive(pid)



# -- whole lives on the emulated board: portal, Wi-Fi, clock, TLS, cloud (make test-esp32) ------

@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A cloudsim for the emulated boards, whose log is kept for the tests."""
    from cloudsim.app import Cloudsim

    log = []
    s = Cloudsim(tmp_path_factory.mktemp("cloudsim"), log=log.append).start()
    s.lines = log
    yield s
    s.stop()


def forwards(sim):
    """--forward options: cloudsim's HTTPS API, Blynk's MQTT front, the broker's MQTTS,
    its plain-HTTP Date port (the emulator forwards only TCP from the board: no SNTP),
    the plgd gateway's CoAP over TLS, the broker's login front (AllThingsTalk's makers)."""
    ports = {"https": sim.https_port, "blynk": sim.front.tls_port,
             "mqtts": sim.broker.mqtts_port, "date": sim.http_port,
             "coaps": sim.gateway.tls_port, "login": sim.broker.login_tls_port}
    return [a for name, port in ports.items() for a in ("--forward", f"{name}={port}")]


def board_config(sim, profile, **extra):
    """A config for the emulated board: cloudsim reached at 192.168.4.100, no public time
    server (ntp an explicit empty list), the time from cloudsim's plain-HTTP Date
    (extra: more keys; one given as None is left out)."""
    host = esp32.GUEST_HOST
    config = {"profile": profile, "vendor": "Acme", "name": "Sensor", "fw_ver": "1.0.0",
              "tmpl_id": "TMPL1a2b3c4d", "ca": "/ca.pem", "wifi_timeout_s": 60,
              "host": host, "api": f"https://{host}:{sim.https_port}/{profile}",
              "port": sim.front.tls_port if profile == "blynk" else sim.broker.mqtts_port,
              "time": {"ntp": [], "http": f"http://{host}:{sim.http_port}/"},
              "backoff": {"base": 1, "cap": 4}, "report_heap": True}
    config.update(extra)
    return {k: v for k, v in config.items() if v is not None}


FIRMWARE_BUILT = 1744675200  # 2025-04-15, the stock firmware's date: onboard's clock floor


def start_board(boards, tmp_path, sim, config, flash=None, extra=(), built=FIRMWARE_BUILT,
                app=None, more=None):
    """An emulated board with onboard on its flash (written offline the first time),
    built as if with the firmware, in April 2025 (or at built, Unix seconds): its
    clock floor is older than cloudsim's certificates, so only a clock set from the
    network verifies them. app: the product's own app.py, written beside them;
    more: more files, {name on the flash: host path}."""
    from onboard_cli.build import stamp_build
    from onboard_cli.deploy import files as deploy_files
    from onboard_cli.paths import tool

    (tmp_path / "config.json").write_text(json.dumps(config))
    flash = flash or tmp_path / "flash.bin"
    if not flash.exists():
        esp32.make_flash(flash, esp32.emulator()[2])
        files = deploy_files(esp32.DEFAULT_BOARD, tmp_path / "config.json", sim.dir / "ca.pem")
        stamp_build(tool("mpy-cross"), tmp_path / "_build.mpy", built)
        files["onboard/_build.mpy"] = tmp_path / "_build.mpy"
        if app:
            (tmp_path / "app.py").write_text(app)
            files["app.py"] = tmp_path / "app.py"
        esp32.write_files(flash, {**files, **(more or {})})
    return boards(flash, "--offline", "--config",
                  tmp_path / "config.json", "--ca", sim.dir / "ca.pem", *forwards(sim), *extra)


def portal_get(board, path):
    try:
        with urllib.request.urlopen(board.ready["portal"] + path.lstrip("/"), timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read() + ("\nthe board's log:\n" + board.log_text()).encode()


def configure_like_the_app(board, **fields):
    """What the Blynk app does with a board in setup mode: its info, the networks it
    sees, then /config with the network and the cloud's fields."""
    board.wait_state("WAIT_CONFIG")
    status, body = portal_get(board, "/board_info.json")
    assert status == 200 and json.loads(body)["ssid"]
    status, body = portal_get(board, "/wifi_scan.json")
    assert status == 200 and any(n.get("ssid") == "Espressif" for n in json.loads(body))
    query = urllib.parse.urlencode({"ssid": "Espressif", "pass": "", **fields})
    status, body = portal_get(board, "/config?" + query)
    assert status == 200, body


def sim_api(sim, method, path, body=None, headers=None):
    import ssl

    ctx = ssl.create_default_context(cafile=str(sim.dir / "ca.pem"))
    req = urllib.request.Request(f"https://127.0.0.1:{sim.https_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.loads(resp.read())


def retained(sim, topic):
    from conftest import broker_messages

    return broker_messages(sim, topic, timeout=30)


def subscribe(sim, topic):
    """A subscriber on the broker from now on: it sees messages sent unretained."""
    from conftest import Subscription

    return Subscription(sim, topic, timeout=120)


def admin(sim):
    return {"Authorization": f"Bearer {sim.admin_token}"}


def blynk_device(sim):
    """A Blynk device provisioned through cloudsim's API: its record (token, deviceId)."""
    return sim_api(sim, "POST", "/blynk/api/v1/organization/device/provision/token",
                   {"orgId": 1, "ownerId": 1}, admin(sim))


FREEZER = Path("/sys/fs/cgroup/freezer")  # cgroup v1's freezer (root)


def deafen(board, seconds=10):
    """Stop the emulated board's two CPU threads for seconds while QEMU runs on:
    its Wi-Fi model's beacons, on the host's clock, fill the board's receive
    buffers, which the model then no longer refills until the board's radio
    restarts (README, the emulator: seen in CI). The board reads joined and
    hears nothing, as a wedged radio.

    Only while QEMU runs on: a CPU thread stopped while it holds QEMU's global
    lock (it does while the board touches a device: the UART, the radio) stops
    QEMU's main loop with it, which then waits on that lock, and no beacon
    comes: the board is not deafened (seen: half the stops of a board printing
    without pause, in each of which its scans still found the networks, while
    every other stop deafened it; once in CI, a Blynk life whose board never
    noticed a fault). So each stop is checked, and one that stopped QEMU's
    main loop is undone and made again."""
    if not os.access(FREEZER, os.W_OK):
        pytest.skip(f"the board's CPUs cannot be stopped here: no writable {FREEZER}")
    pid = board.ready["qemu_pid"]
    cpus = [t.name for t in Path(f"/proc/{pid}/task").iterdir()
            if (t / "comm").read_text().startswith("CPU ")]
    assert len(cpus) == 2, cpus
    group = FREEZER / f"onboard-deafen-{os.getpid()}"
    group.mkdir(exist_ok=True)
    try:
        for t in cpus:
            (group / "tasks").write_text(t)
        for _ in range(20):
            (group / "freezer.state").write_text("FROZEN")
            if not main_loop_waits_on_a_lock(pid):
                break
            (group / "freezer.state").write_text("THAWED")  # and again, at another moment:
            time.sleep(0.1)  # (QEMU runs meanwhile, and the lock changes hands)
        else:
            pytest.fail("each stop of the board's CPUs stopped QEMU's main loop too")
        time.sleep(seconds)  # (the fault's length: the receive buffers fill meanwhile)
    finally:
        (group / "freezer.state").write_text("THAWED")
        for t in cpus:
            (FREEZER / "tasks").write_text(t)
        group.rmdir()


def main_loop_waits_on_a_lock(pid):
    """Whether QEMU's main thread (the process's first), read every 20 ms for
    the half second after its CPU threads stopped, mostly waits on a lock (a
    futex) rather than in its poll in the last ten readings: its main loop
    wakes many times a second, so by then it has met the global lock if a
    stopped CPU thread holds it. (A kernel that shows no wait channel reads
    as never waiting: the freeze is then taken as it is, as before.)"""
    waits = []
    for _ in range(25):
        time.sleep(0.02)  # (sampling: a thread's state can only be read, not awaited)
        waits.append("futex" in Path(f"/proc/{pid}/task/{pid}/wchan").read_text())
    return sum(waits[-10:]) > 5


@lives
def test_blynk_life_from_an_empty_flash_with_the_clock_at_2000(tmp_path, boards, sim):
    from test_app import ECHO

    prov = blynk_device(sim)
    # (keepalive 10 s and a radio restart at each failed try: see the end; the
    # product's app.py echoes what the cloud sends through the runtime it is given)
    board = start_board(boards, tmp_path, sim, board_config(sim, "blynk", keepalive_s=10,
                                                             rejoin_after=1), app=ECHO)
    dates = sim.date_server.requests
    # info/mcu is sent unretained, as Blynk's devices do: listen before the board is online
    mcu = subscribe(sim, f"blynk/{prov['deviceId']}/info/mcu")
    try:
        # a person's browser (the captive portal's pop-up) got the form first
        board.wait_state("WAIT_CONFIG")
        status, page = portal_get(board, "/")
        assert status == 200 and b'action="/config"' in page
        configure_like_the_app(board, blynk=prov["token"])
        # setup mode let go of the page's code once sent (as on the Unix port, test_memory)
        assert "page" not in board.wait_state("CONFIGURING")["loaded"]
        board.wait_state("CONNECTING_CLOUD")
        running = board.wait_state("RUNNING")
        assert online_holds_nothing_of(running) == set()  # as on the Unix port (test_memory)
        assert sim.date_server.requests > dates  # it asked cloudsim the time
        assert sim.clouds["blynk"].devices[prov["deviceId"]]["active"]
        (topic, payload), = mcu.messages()
    finally:
        mcu.close()
    assert json.loads(payload)["tmpl"] == "TMPL1a2b3c4d"
    assert sim.front.logins["tls"] >= 1
    # the cloud's message reaches the app, whose own message reaches the broker
    echo = subscribe(sim, f"blynk/{prov['deviceId']}/ds/echo")
    try:
        sim_api(sim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                               "name": "ds/led", "payload": "1"}, admin(sim))
        assert echo.messages() == [(f"blynk/{prov['deviceId']}/ds/echo", b"downlink/ds/led=1")]
    finally:
        echo.close()
    # its radio goes deaf while it reads joined: its session fails, and after
    # that failed try it restarts the radio, joins again and logs in
    logins, since = sim.front.logins["tls"], len(board.events)
    deafen(board)

    def after(n):
        return lambda e: any(x is e for x in board.events[n:])
    board.wait_state("CONNECTING_NET", until=after(since))
    board.wait_state("RUNNING", until=after(len(board.events)))
    assert sim.front.logins["tls"] == logins + 1


@lives
def test_with_no_time_source_the_clock_starts_at_the_build_and_verifies_older_certificates(
        tmp_path, boards, sim):
    # the board's clock wakes at 2000; with no time source answering, onboard sets it to
    # the firmware's build time, so a certificate issued before the build verifies.
    # cloudsim's certificates date from an hour before its start: this board is built
    # after that, and its config names no time source
    prov = blynk_device(sim)
    config = board_config(sim, "blynk", time={"ntp": []})
    board = start_board(boards, tmp_path, sim, config, built=int(time.time()) - 60)
    dates = sim.date_server.requests
    configure_like_the_app(board, blynk=prov["token"])
    first = board.wait_state(None, until=lambda e: e["state"] == "RUNNING" or e["last_error"])
    assert (first["state"], first["last_error"]) == ("RUNNING", 0)
    assert sim.date_server.requests == dates  # no time came from the network
    assert sim.clouds["blynk"].devices[prov["deviceId"]]["active"]


@lives
def test_after_a_reboot_with_no_time_source_the_board_keeps_the_time_it_had_set(tmp_path, boards,
                                                                             sim):
    # an ESP32's RTC keeps counting through a reset: rebooted by the cloud while its time
    # source is gone, the board verifies cloudsim's certificates (from an hour before
    # cloudsim's start) by the clock it set before, not one rolled back to its build
    # (April 2025: those certificates would not be valid yet)
    from cloudsim.timesrc import DateServer

    prov = blynk_device(sim)
    dates = DateServer(time.time).start()
    config = board_config(sim, "blynk",
                          time={"ntp": [], "http": f"http://{esp32.GUEST_HOST}:{dates.port}/"})
    try:
        board = start_board(boards, tmp_path, sim, config,
                            extra=("--forward", f"time={dates.port}"))
        configure_like_the_app(board, blynk=prov["token"])
        board.wait_state("RUNNING")
        assert dates.requests == 1  # its clock was set from this source
    finally:
        dates.stop()  # and from now on there is none
    before = {id(e) for e in board.events}
    sim_api(sim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": prov["deviceId"],
                                            "name": "reboot"}, admin(sim))
    after = board.wait_state(None, until=lambda e: id(e) not in before and (
        e["state"] == "RUNNING" or e["last_error"]))
    rebooted = [e["state"] for e in board.events if id(e) not in before]
    assert "CONNECTING_NET" in rebooted  # (the boot's join, on its stored network)
    assert (after["state"], after["last_error"]) == ("RUNNING", 0)
    assert dates.requests == 1


class CertProxy:
    """A TLS server on the host presenting the certificate of kind `current` (expired,
    not_yet_valid, valid), each signed by cloudsim's CA; a connection whose
    handshake succeeds is carried on to cloudsim's HTTPS API. `handshakes` lists
    (certificate kind, "ok" or the handshake's error) as they happened."""

    def __init__(self, sim, tmp_path, current):
        import datetime
        import ssl

        day = datetime.timedelta(days=1)
        now = datetime.datetime.now(datetime.timezone.utc)
        dates = {"expired": (now - 30 * day, now - day),
                 "not_yet_valid": (now + day, now + 30 * day), "valid": (None, None)}
        self.contexts = {}
        for kind in dates:
            cert, key = sim.ca.issue(not_before=dates[kind][0], not_after=dates[kind][1])
            (tmp_path / f"{kind}.pem").write_bytes(cert)
            (tmp_path / f"{kind}.key").write_bytes(key)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tmp_path / f"{kind}.pem", tmp_path / f"{kind}.key")
            self.contexts[kind] = ctx
        self.upstream = ssl.create_default_context(cafile=str(sim.dir / "ca.pem"))
        self.sim = sim
        self.current = current
        self.handshakes = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            kind = self.current
            threading.Thread(target=self._one, args=(conn, kind), daemon=True).start()

    def _one(self, conn, kind):
        import ssl

        conn.settimeout(120)
        try:
            tls = self.contexts[kind].wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.handshakes.append((kind, type(e).__name__))
            conn.close()
            return
        self.handshakes.append((kind, "ok"))
        up = self.upstream.wrap_socket(socket.create_connection(("127.0.0.1", self.sim.https_port)),
                                       server_hostname="127.0.0.1")

        threading.Thread(target=pipe, args=(up, tls), daemon=True).start()
        pipe(tls, up)

    def close(self):
        self.server.close()


@lives
def test_a_certificate_expired_or_not_yet_valid_is_711_after_boot_and_later(tmp_path, boards,
                                                                             sim):
    prov = blynk_device(sim)
    proxy = CertProxy(sim, tmp_path, "expired")
    config = board_config(sim, "blynk", api=f"https://{esp32.GUEST_HOST}:{proxy.port}/blynk")
    flash = tmp_path / "flash.bin"
    try:
        board = start_board(boards, tmp_path, sim, config, flash,
                            ("--forward", f"proxy={proxy.port}"))
        configure_like_the_app(board, blynk=prov["token"])
        # later: the board has run its setup, joined, set its clock; the expired one is refused
        board.wait_state("CONNECTING_CLOUD",
                         until=lambda e: e["last_error"] == 711 and "retry_in" in e)
        assert proxy.handshakes[:1] == [("expired", "SSLError")]
        assert not sim.clouds["blynk"].devices[prov["deviceId"]]["active"]
        board.power_cut()
        proxy.current = "not_yet_valid"
        # right after boot, on the stored credentials: the not-yet-valid one is refused
        board = start_board(boards, tmp_path, sim, config, flash,
                            ("--forward", f"proxy={proxy.port}"))
        # (a retry note of this boot: the stored last_error shows in its first events too)
        board.wait_state("CONNECTING_CLOUD",
                         until=lambda e: e["last_error"] == 711 and "retry_in" in e)
        assert ("not_yet_valid", "SSLError") in proxy.handshakes
        assert not any(kind == "valid" or ok == "ok" for kind, ok in proxy.handshakes)
        proxy.current = "valid"
        board.wait_state("RUNNING")  # and the right certificate works
        assert proxy.handshakes[-1] == ("valid", "ok")
        assert sim.clouds["blynk"].devices[prov["deviceId"]]["active"]
    finally:
        proxy.close()


@lives
def test_a_stored_redirect_whose_target_died_is_left_for_home_after_a_reboot(tmp_path, boards,
                                                                                sim, mpy):
    # on the firmware's sockets, TLS and flash: Blynk redirects a board to a target
    # that works (a relay to the same front), which is stored once online there, and a
    # reboot goes straight to it; once nothing answers there, the board logs in at the
    # host the app gave again, shows no failure for it, and the store is home again
    prov = blynk_device(sim)
    target = Relay(sim.front.tls_port)
    forward = ("--forward", f"target={target.port}")
    config = board_config(sim, "blynk")
    try:
        board = start_board(boards, tmp_path, sim, config, extra=forward)
        configure_like_the_app(board, blynk=prov["token"])
        board.wait_state("RUNNING")
        before = {id(e) for e in board.events}
        sim_api(sim, "POST", "/_sim/downlink", {
            "cloud": "blynk", "device": prov["deviceId"], "name": "redirect",
            "payload": f"mqtts://{esp32.GUEST_HOST}:{target.port}"}, admin(sim))
        board.wait_state("RUNNING", until=lambda e: id(e) not in before)  # (stored before)
        assert target.connections == 1
        board.power_cut()
        assert read_store(mpy, tmp_path / "flash.bin", tmp_path / "at-target")["cloud"][
            "port"] == target.port
    finally:
        target.close()  # from now on nothing answers there
    logins = sim.front.logins["tls"]
    board = start_board(boards, tmp_path, sim, config, extra=forward)
    board.wait_state("RUNNING")
    tried = board.relays.read_text()[board.relays_from:]  # (what this boot's relays did)
    assert f"port {target.port}: host refused" in tried  # the stored target first
    assert sim.front.logins["tls"] == logins + 1  # then home
    assert [e["last_error"] for e in board.events if e["last_error"]] == []
    board.power_cut()
    stored = read_store(mpy, tmp_path / "flash.bin", tmp_path / "home")
    # (the host the app gave is the config's: nothing of the target is left)
    assert stored["status"] == "ok"
    assert stored["cloud"] == {"token": prov["token"], "activated": True}


def clock_tuple():
    """Now (UTC) as machine.RTC().datetime() takes it."""
    from datetime import datetime, timezone

    t = datetime.now(timezone.utc)
    return (t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, 0)


def product_code(board, script):
    """script run on a board in setup mode (joined, so the host is reached) as a
    product's own code, the clock set first as a time source would have set it (the
    certificates' dates): mpremote's run."""
    board.wait_state("WAIT_CONFIG")
    return board.mpremote("exec", f"import machine\nmachine.RTC().datetime({clock_tuple()})\n"
                          + script)


BLOCKING_MQTT = """
from onboard.ca import context
from onboard.mqtt import MQTTClient
got = []
c = MQTTClient("esp32-app", {host!r}, {port}, user={token!r}, password={token!r},
               ssl=context("/ca.pem"), timeout=60)
c.set_callback(lambda topic, msg: got.append((topic, msg)))
c.connect()
c.subscribe(b"esp32/down", 1)
c.publish(b"esp32/up", b"from the board", qos=1)
while not got:
    c.wait_msg()
print("got", got)
c.disconnect()
"""


BLOCKING_HTTPS = """
from onboard.http import request
r = request("POST", {url!r}, json={{"type": "production_token"}},
            headers={{"Authorization": {auth!r}}}, ca="/ca.pem", timeout=60)
print("reply", r.status_code, r.json()["token_id"])
"""


@pytest.fixture(scope="class")
def setup_mode(tmp_path_factory, sim):
    """One board in setup mode (Blynk, not configured), with the `echo` forward to a
    host server: (board, server). Booting to setup mode is most of what each of this
    class's tests took on a board of its own."""
    tmp = tmp_path_factory.mktemp("setup-mode")
    server = socket.create_server(("127.0.0.1", 0))
    started = []

    def boards(flash, *args):
        started.append(Board(flash, *args))
        return started[-1]

    try:
        yield start_board(boards, tmp, sim, board_config(sim, "blynk"),
                          extra=("--forward", f"echo={server.getsockname()[1]}")), server
    finally:
        server.close()
        for board in started:
            board.close()
            assert not qemu_alive(board.ready["qemu_pid"]), "an emulator outlived its run"


class TestOneBoardInSetupMode:
    """The USB line's Improv while onboard runs, then the board as a product's own
    code uses it (mpremote's exec, which stops onboard: Improv runs first), in the
    order written here. Each test also passes alone (-k), on a board of its own."""

    @lives
    def test_in_setup_mode_the_usb_line_answers_improv_and_still_lets_mpremote_in(
            self, setup_mode):
        # Improv's RPC packets carry 0x03, the REPL's Ctrl-C, which mpremote sends
        from test_improv import until

        from onboard_cli.improv import GET_DEVICE_INFO, RESULT, Serial, parse_strings, rpc

        board, _ = setup_mode
        assert "improv" not in board.wait_state("WAIT_CONFIG")["loaded"]  # loaded on a first byte
        port = Serial(board.ready["repl"])  # the board's UART0, as ESP Web Tools opens its USB
        try:
            port.send(rpc(GET_DEVICE_INFO))
            data = until(port, RESULT, GET_DEVICE_INFO, timeout=120)[-1][1]  # (what else came)
        finally:
            port.close()
        name, version, chip, device = parse_strings(data[2:])
        assert (name, version, chip) == ("Sensor", "1.0.0", "ESP32 (QEMU)")
        assert device.startswith("Acme Sensor-")
        run = board.mpremote("exec", "print('repl', 6 * 7)")
        assert "repl 42" in run.stdout, run.stdout + run.stderr

    @emulated
    def test_a_forwarded_host_port_is_reached_from_the_board(self, setup_mode):
        board, server = setup_mode
        port = server.getsockname()[1]
        assert board.ready["forwards"]["echo"] == f"192.168.4.100:{port}"
        board.wait_state("WAIT_CONFIG")  # the station has joined the emulator's network
        got = []

        def serve():
            server.settimeout(120)
            conn, _ = server.accept()
            with conn:
                got.append(conn.recv(100))
                conn.sendall(b"host says hi")

        threading.Thread(target=serve, daemon=True).start()
        proc = board.mpremote("exec", "import socket\n"
                              f"s = socket.socket(); s.connect(('192.168.4.100', {port}))\n"
                              "s.send(b'board says hi'); print(s.recv(100)); s.close()")
        assert got == [b"board says hi"]
        assert "b'host says hi'" in proc.stdout, proc.stdout + proc.stderr

    @lives
    def test_the_blocking_mqtt_client_over_tls_publishes_and_receives_on_the_firmware(
            self, setup_mode, sim):
        # onboard.mqtt, umqtt.simple's interface, as a product's own code uses it: over the
        # firmware's sockets and mbedTLS (its handshake and reads polled, not blocking), a
        # verified TLS login, a QoS 1 publish the broker takes, a message the broker sends
        from cloudsim.mqttfront import publish

        board, _ = setup_mode
        token = "esp32-app-5ecret"
        sim.broker.allow(token, token)
        publish(sim.broker.mqtt_port, *sim.internal, "esp32/down", "from the host", retain=True)
        up = subscribe(sim, "esp32/up")
        try:
            run = product_code(board, BLOCKING_MQTT.format(
                host=esp32.GUEST_HOST, port=sim.broker.mqtts_port, token=token))
            assert "got [(b'esp32/down', b'from the host')]" in run.stdout, (
                run.stdout + run.stderr)
            assert up.messages() == [("esp32/up", b"from the board")]
        finally:
            up.close()
            publish(sim.broker.mqtt_port, *sim.internal, "esp32/down", "", retain=True)  # (cleared)

    @lives
    def test_the_blocking_https_client_verifies_and_posts_on_the_firmware(self, setup_mode, sim):
        # onboard.http, urequests' names, as a product's own code uses it: a verified
        # HTTPS POST over the firmware's sockets and mbedTLS (its handshake and reads
        # polled, not blocking), seen by the server, whose reply the board reads whole
        import base64

        board, _ = setup_mode
        enrolments = sim.clouds["imp"].enrolments
        issued = len(enrolments)
        run = product_code(board, BLOCKING_HTTPS.format(
            url=f"https://{esp32.GUEST_HOST}:{sim.https_port}/imp/v5/enroll",
            auth="Basic " + base64.b64encode(sim.admin_token.encode() + b":").decode()))
        assert len(enrolments) == issued + 1, run.stdout + run.stderr  # the server took it
        assert f"reply 201 {enrolments[-1][1]}" in run.stdout, run.stdout + run.stderr


def spokezone_device(sim, cpu):
    """A Spoke Zone device made through cloudsim's API: its record (token, uuid, id)."""
    user = sim_api(sim, "POST", "/spokezone/login",
                   {"username": "super", "password": "super-password"})["token"]
    return sim_api(sim, "POST", "/spokezone/api/v2/devices", {"cpuId": cpu},
                   {"x-access-token": user})


@lives
def test_spokezone_life_from_an_empty_flash_with_the_clock_at_2000_at_mqtts_default_port(
        tmp_path, boards, sim):
    # its config names no MQTT port, as a product's may: the board dials 8883, MQTT
    # over TLS's own port, forwarded to the broker's MQTTS port
    dev = spokezone_device(sim, "cpu-esp32-life")
    board = start_board(boards, tmp_path, sim, board_config(sim, "spokezone", port=None),
                        extra=("--forward", f"mqtts_default={sim.broker.mqtts_port}:8883"))
    dates = sim.date_server.requests
    configure_like_the_app(board, token=dev["token"], uuid=dev["uuid"], cpu_id="cpu-esp32-life")
    board.wait_state("CONNECTING_CLOUD")
    board.wait_state("RUNNING")
    assert sim.date_server.requests > dates  # it asked cloudsim the time
    # its retained birth message, through the broker's MQTTS port (a 7-day token is not
    # renewed at the first start: no HTTPS request of its own)
    (topic, payload), = retained(sim, f"mrs/d/{dev['id']}/status")
    assert json.loads(payload) == {"status": "online", "fw": "1.0.0"}


@lives
def test_plgd_life_from_an_empty_flash_signs_up_over_coap_is_listed_and_refreshes_its_tokens(
        tmp_path, boards, sim):
    from test_plgd import c2c, listed, requests

    from onboard_cli.clouds import authorization_code
    from onboard_cli.sim import PLGD_APP

    # the hub's "Onboard Device" code, as `onboard plgd onboard` prints it
    code = authorization_code(f"https://127.0.0.1:{sim.https_port}/plgd", sim.admin_token,
                              "onboard-device", str(sim.dir / "ca.pem"))
    gw = sim.gateway
    # and a switch the cloud writes: its change is notified after the refresh too
    app = PLGD_APP + ('light = {"value": False}\n'
                      'def _set(doc):\n    light["value"] = doc.get("value")\n'
                      'ocf.resource("/light/1", "oic.r.switch.binary", lambda: dict(light),\n'
                      '             _set)\n')
    # its own identity certificate, which the gateway requires here (plgd hub's
    # clientCertificateRequired, true in its Helm chart): it names the device's id
    di = "3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b0a"
    cert, key = sim.ca.issue_device(di)
    (tmp_path / "device.pem").write_bytes(cert)
    (tmp_path / "device.key").write_bytes(key)
    board = start_board(boards, tmp_path, sim, board_config(
        sim, "plgd", cert="/device.pem", key="/device.key"), app=app, more={
        "device.pem": tmp_path / "device.pem", "device.key": tmp_path / "device.key"})
    lifetime, sim.lifetimes["plgd"] = sim.lifetimes["plgd"], 22  # refreshed 10 s before expiry
    gw.client_cert_required = True
    try:
        configure_like_the_app(board, apn="plgd", sid="sid-1", at=code,
                               cis=f"coaps+tcp://{esp32.GUEST_HOST}:{gw.tls_port}")
        board.wait_state("RUNNING")
        # the gateway saw it sign up with the code, sign in with the tokens it got, publish,
        # under its certificate's id
        assert {who for _, event, who in list(gw.events) if event == "signup"} == {di}

        def seen():
            return [e for _, e, who in list(gw.events) if who == di]
        assert requests(sim, di)[:3] == ["signup", "signin", "publish"]
        # the gateway observes the resources of its app.py through /oic/res's batch
        # interface, as plgd hub's default configuration needs (its first answer came)
        assert gw.wait_observing(di, "/sensor/1", timeout=120), board.log_text()
        assert "observing /oic/res" in seen()
        # and the hub's API lists the device online with that resource's content
        shown = listed(sim, di)
        assert shown["metadata"]["connection"]["status"] == "ONLINE"
        content = {r["href"]: r.get("content") for r in shown["resources"]}
        assert content["/sensor/1"] == {"temperature": 21.5}
        # before its access token expires it refreshes the pair and signs in with the new one
        def refreshed_then_signed_in():
            ev = seen()
            return "refresh" in ev and "signin" in ev[ev.index("refresh"):]
        with gw.changed:
            assert gw.changed.wait_for(refreshed_then_signed_in, 120), seen()
        # on the same connection, signed in again and not published again: the
        # gateway's observation goes on, so a change still reaches it
        assert seen().count("publish") == 1
        c2c(sim, "PUT", f"/{di}/light/1", {"value": True})
        assert gw.wait_event(di, "notified /light/1", timeout=60), seen()
        assert content["/oic/d"]["di"] == di  # (it names itself so too)
    finally:
        sim.lifetimes["plgd"] = lifetime
        gw.client_cert_required = False


@lives
def test_allthingstalk_life_makes_its_asset_and_a_command_comes_back_as_its_state(tmp_path, boards,
                                                                                 sim):
    from test_profiles import LED

    att = sim.clouds["att"]
    device_id = att.add_device("ground-1", "esp32")
    config = board_config(sim, "allthingstalk", port=sim.broker.login_tls_port, assets=LED,
                          api=f"https://{esp32.GUEST_HOST}:{sim.https_port}/att")
    board = start_board(boards, tmp_path, sim, config)
    configure_like_the_app(board, device_id=device_id, token=att.devices[device_id]["token"])
    board.wait_state("RUNNING")
    # its LED asset, made through the HTTPS API at the first connection
    assert att.devices[device_id]["assets"]["led"]["is"] == "actuator"
    # a command from the cloud reaches the board, whose state comes back on the broker
    states = subscribe(sim, f"device/{device_id}/asset/led/state")
    try:
        sim_api(sim, "POST", "/_sim/downlink", {"cloud": "att", "device": device_id,
                                               "name": "led", "payload": '{"value": true}'},
                admin(sim))
        (topic, payload), = states.messages(1)
    finally:
        states.close()
    assert json.loads(payload) == {"value": True}


# -- power cuts over a credential write and over a token renewal (make test-esp32-cuts) -----
#
# Spoke Zone on the emulated board, against a cloudsim of its own whose device tokens live
# SPOKEZONE_LIFETIME seconds, so the board renews every ~20 s (10 s before expiry). Each cut
# is a SIGKILL of QEMU at a moment of the step, chosen by counting the emulator's writes to
# the flash image file (inotify) from an observed start: the renewal request arriving at
# cloudsim, or the portal's /config sent. The moments are spread from 0 writes to past the
# last write of the step (then the cut comes once the step is over: back online). After
# each cut the flash is read back with Store on the Unix port, then the board boots on it
# and must come back online by itself: a new birth message of its own on the broker.

SPOKEZONE_LIFETIME = 30
MOMENTS = 10  # per step: 10 over a token renewal, 10 over a credential write
long_cuts = _needs(("ONBOARD_ESP32_CUTS",), "test-esp32-cuts")
STORED = """
import json
from onboard.store import Store
s = Store(%r)
s.load()
print(json.dumps({'status': s.status, 'cloud': s.get('cloud'),
                  'pending': s.get('state').get('pending')}))
"""


class FlashWrites:
    """The emulator's writes to the flash image file, counted as they happen (inotify
    IN_MODIFY: QEMU writes the file at every flash program and erase)."""

    IN_MODIFY = 0x2

    def __init__(self, flash):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, str(flash).encode(),
                                                 self.IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {flash}")
        self.count = 0
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        import select
        import struct

        while not self.closed:
            if not select.select([self.fd], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            n, i = 0, 0
            while i + 16 <= len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, i)
                n += bool(mask & self.IN_MODIFY)
                i += 16 + length
            with self.cond:
                self.count += n
                self.cond.notify_all()

    def wait(self, count, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.count >= count, timeout)

    def close(self):
        self.closed = True
        self.thread.join(5)
        os.close(self.fd)


def boot_online(sim, topic, start, timeout=300):
    """start() a board, then wait for a message the broker forwards on topic as it is
    published (retain flag clear: not the retained one a new subscription gets, which
    predates the start): the board is online. Returns the board."""
    from conftest import Subscription

    sub = Subscription(sim, topic, timeout=20)
    try:
        board = start()
        deadline = time.monotonic() + timeout
        while _next_publish(sub, deadline, board) & 1:
            pass
        return board
    finally:
        sub.close()


def _next_publish(sub, deadline, board):
    """The first byte (type and flags) of the next PUBLISH on sub; PINGREQ keeps it open."""
    while True:
        while len(sub.buf) >= 2:
            n, shift, i = 0, 0, 1
            while sub.buf[i] & 0x80 and i + 1 < len(sub.buf):
                n |= (sub.buf[i] & 0x7F) << shift
                shift += 7
                i += 1
            n |= sub.buf[i] << shift
            if len(sub.buf) < i + 1 + n:
                break
            first = sub.buf[0]
            sub.buf = sub.buf[i + 1 + n:]
            if first >> 4 == 3:
                return first
        assert time.monotonic() < deadline, "not back online; the board's log:\n" + \
            board.log_text()
        try:
            part = sub.sock.recv(4096)
        except TimeoutError:
            sub.sock.sendall(b"\xc0\x00")  # PINGREQ: the broker keeps a quiet reader
            continue
        assert part, "the broker closed the test subscription"
        sub.buf += part


def drain(board):
    while board.next_line(0.001) is not None:
        pass


def cut_at(board, writes, start, k, seen, done, timeout=300):
    """SIGKILL the board once k flash writes came since `start` writes, or once an event
    after the first `seen` is done(event) (the step is over) if fewer come. Returns the
    writes seen since start."""
    deadline = time.monotonic() + timeout
    while not writes.wait(start + k, 0.02):
        drain(board)
        if any(done(e) for e in board.events[seen:]):
            break
        assert time.monotonic() < deadline, "the step neither wrote nor ended:\n" + \
            board.log_text()
    assert board.power_cut() != 0
    return writes.count - start


def token_now(flash):
    """The Spoke Zone token stored on the flash image now, read from a copy while the
    board waits on the network (nothing of the store in flight)."""
    fs = esp32.mount(flash)
    with fs.open("onboard.json", "rb") as f:
        return json.loads(f.read())["data"]["cloud"]["token"]


def read_store(mpy, flash, folder):
    esp32.extract(flash, folder)
    return json.loads(mpy.run(STORED % str(folder / "onboard.json")).lines[-1])


@pytest.fixture
def own_sim(tmp_path, monkeypatch):
    """A cloudsim for one test (it shortens Spoke Zone's token lifetime), recording
    every Spoke Zone device token it issues (in .issued, oldest first)."""
    from cloudsim.app import Cloudsim

    log = []
    s = Cloudsim(tmp_path / "cloudsim", log=log.append).start()
    s.lines = log
    s.issued = []
    sz = s.clouds["spokezone"]
    issue = sz.device_token

    def recorded(device_id, rotate=False):
        token = issue(device_id, rotate)
        s.issued.append(token)
        return token

    monkeypatch.setattr(sz, "device_token", recorded)
    sim_api(s, "POST", "/_sim/lifetimes", {"cloud": "spokezone", "seconds": SPOKEZONE_LIFETIME},
            {"Authorization": f"Bearer {s.admin_token}"})
    yield s
    s.stop()


def spokezone_online(boards, tmp_path, sim):
    """A board configured like the app from an empty flash, online with Spoke Zone."""
    dev = spokezone_device(sim, "cpu-esp32-cuts")
    config = board_config(sim, "spokezone")

    def start():
        board = start_board(boards, tmp_path, sim, config)
        configure_like_the_app(board, token=dev["token"], uuid=dev["uuid"],
                               cpu_id="cpu-esp32-cuts")
        return board

    return boot_online(sim, f"mrs/d/{dev['id']}/status", start), dev, config


def spread(total):
    """MOMENTS write counts from 0 to total + 1 (past the step's last write)."""
    return [round(i * (total + 1) / (MOMENTS - 1)) for i in range(MOMENTS)]


def kept(stored, allowed):
    """What the store read back after a cut holds: "before" or "new N" when it is
    whole and holds credentials of before or after the step (the stored token and,
    mid-switch, the pending one are among `allowed`: the token stored when the step
    began, then those cloudsim issued since, oldest first); else what is wrong."""
    names = {t: "before" if i == 0 else f"new {i}" for i, t in enumerate(allowed)}
    if stored["status"] not in ("ok", "previous"):
        return f"store {stored['status']}"
    cloud, pending = stored["cloud"], stored["pending"]
    if cloud.get("token") not in names or not cloud.get("uuid"):
        return f"stored token none of {sorted(names.values())}"
    if pending and pending["cloud"].get("token", cloud["token"]) not in names:
        return f"pending token none of {sorted(names.values())}"
    return names[cloud["token"]]


@long_cuts
def test_power_cuts_at_moments_of_a_token_renewal_keep_a_token_and_the_board_comes_back(
        tmp_path, boards, own_sim, mpy):
    sim = own_sim
    board, dev, config = spokezone_online(boards, tmp_path, sim)
    flash = tmp_path / "flash.bin"
    topic = f"mrs/d/{dev['id']}/status"
    writes = FlashWrites(flash)

    def renewal(board):
        # from the renewal request on (cut_through's trigger)
        next_renewal(sim, board)
        start, seen, mark = writes.count, len(board.events), len(sim.issued)
        return start, seen, token_now(flash), mark

    try:
        cuts = cut_through("renewal", renewal, lambda e: e.get("online"), board, writes, flash,
                           sim, mpy, tmp_path, topic,
                           lambda: start_board(boards, tmp_path, sim, config, flash))
    finally:
        writes.close()
    # every cut left a token of before or after the renewal (and the board came back)
    assert len(cuts) == MOMENTS and faults(cuts) == []


@long_cuts
def test_power_cuts_at_moments_of_a_credential_write_keep_credentials_and_the_board_comes_back(
        tmp_path, boards, own_sim, mpy):
    from cloudsim.mqttfront import publish

    sim = own_sim
    board, dev, config = spokezone_online(boards, tmp_path, sim)
    flash = tmp_path / "flash.bin"
    topic = f"mrs/d/{dev['id']}/status"
    writes = FlashWrites(flash)

    def new_credentials(board):
        """Setup mode from the cloud (reconfigure), then /config with a new token sent
        (in the background); returns (writes at the send, events seen then, the token
        stored before, the count of tokens cloudsim had issued before the new one)."""
        mark = len(sim.issued)
        token = sim_api(sim, "POST", "/spokezone/loginDevice",
                        {"token": sim.clouds["spokezone"].devices[dev["id"]]["token"],
                         "cpu_id": "cpu-esp32-cuts", "uuid": dev["uuid"]})["token"]
        seen = len(board.events)
        # retained: the board gets it whenever it is subscribed (a renewal's reconnection
        # would lose a plain downlink), and it is cleared once setup mode is open
        reconfigure = f"mrs/d/{dev['id']}/ctrl/reconfigure"
        publish(sim.broker.mqtt_port, *sim.internal, reconfigure, "1", retain=True)
        board.wait_state("WAIT_CONFIG", until=lambda e: board.events.index(e) >= seen)
        publish(sim.broker.mqtt_port, *sim.internal, reconfigure, "", retain=True)
        query = urllib.parse.urlencode({"ssid": "Espressif", "pass": "", "token": token,
                                        "uuid": dev["uuid"], "cpu_id": "cpu-esp32-cuts"})
        sent = threading.Thread(target=_portal_reply, args=(board, "/config?" + query),
                                daemon=True)
        before = token_now(flash)  # in setup mode: nothing of the store in flight
        start, seen = writes.count, len(board.events)
        sent.start()
        return start, seen, before, mark

    try:
        cuts = cut_through("credential write", new_credentials,
                           lambda e: e["state"] == "RUNNING", board, writes, flash, sim, mpy,
                           tmp_path, topic,
                           lambda: start_board(boards, tmp_path, sim, config, flash))
    finally:
        writes.close()
    # every cut left credentials of before or after the write (and the board came back)
    assert len(cuts) == MOMENTS and faults(cuts) == []


def faults(cuts):
    """The cuts after which the flash kept neither the credentials of before nor new ones."""
    return [c for c in cuts if c[2] != "before" and not c[2].startswith("new ")]


def cut_through(name, trigger, done, board, writes, flash, sim, mpy, tmp_path, topic, restart):
    """Power cuts spread over what trigger(board) starts: one run uncut counts its
    flash writes (from the trigger until an event done(e) in RUNNING), then for each
    of MOMENTS the board is killed at that many writes, the flash read back, and the
    board restarted on it (restart()), which must come back online by itself (a
    timeout otherwise). Returns, per cut, (moment, writes seen, what the flash kept:
    kept()'s answer). trigger returns (writes then, events seen then, the token
    stored before, tokens cloudsim had issued then)."""
    start, seen, _, _ = trigger(board)
    board.wait_state("RUNNING", until=lambda e: done(e) and board.events.index(e) >= seen)
    moments = spread(writes.count - start)
    print(f"{name}: flash writes", writes.count - start, "cuts at", moments)
    results = []
    for cycle, k in enumerate(moments):
        start, seen, before, mark = trigger(board)
        got = cut_at(board, writes, start, k, seen, done)
        stored = read_store(mpy, flash, tmp_path / f"cut{cycle}")
        results.append((k, got, kept(stored, [before] + sim.issued[mark:])))
        board = boot_online(sim, topic, restart)
    print(f"{name} cuts (moment, writes seen, token kept):", results)
    return results


def _portal_reply(board, path):
    try:
        return portal_get(board, path)[0]
    except OSError as e:  # the power went while it was answered
        return type(e).__name__


def next_renewal(sim, board):
    """Wait for the next renewal request to arrive at cloudsim."""
    n = len(sim.arrivals("/spokezone/loginDevice", "POST"))
    wait_until(lambda: len(sim.arrivals("/spokezone/loginDevice", "POST")) > n, board)


def wait_until(condition, board, timeout=300):
    deadline = time.monotonic() + timeout
    while not condition():
        drain(board)
        assert time.monotonic() < deadline, "waited in vain; the board's log:\n" + \
            board.log_text()
        time.sleep(0.01)


# -- through mpremote, last: mpremote waits for the board's answer at every step, so these
# took twice as long while make test's host half shared the cores (by the time they run
# now, that half has usually ended) ------------------------------------------------------

@pytest.fixture(scope="class")
def deployed(tmp_path_factory):
    """One board that `onboard esp32 run` deployed onboard to through mpremote,
    as `onboard deploy` does, with two host ports forwarded for test-device's
    HTTPS servers: (board, ports). Copying the library over the emulated
    UART is most of a minute, so the deploy test and test-device share it:
    test-device brings the board's onboard/ up to build/onboard, and copies
    none of the files the deploy put there."""
    folder = tmp_path_factory.mktemp("deployed")
    config = json.loads((ROOT / "firmware" / "config.example.json").read_text())
    config.update(vendor="Emulated", name="Board")
    (folder / "config.json").write_text(json.dumps(config))
    ports = [free_port(), free_port()]
    board = Board(folder / "flash.bin", "--config", folder / "config.json",
                  "--forward", f"https={ports[0]}", "--forward", f"https_other={ports[1]}",
                  timeout=600)
    yield board, ports
    board.close()
    assert not qemu_alive(board.ready["qemu_pid"]), "an emulator outlived its run"


class TestDeployedThroughMpremote:
    """The deploy test and test-device on one board, which their class's fixture
    shuts down once both have run: an idle emulated board still takes a good
    part of a core, which the tests after them need."""

    @emulated
    def test_deployed_through_mpremote_the_board_serves_its_portal_on_the_host(self, deployed):
        board, _ = deployed
        event = board.wait_state("WAIT_CONFIG")
        assert event["portal"] == board.ready["portal"]
        with urllib.request.urlopen(board.ready["portal"] + "board_info.json", timeout=60) as r:
            info = json.load(r)
        assert info["ssid"].startswith("Emulated Board-")  # the deployed config's vendor and name
        print(*[line for line in board.log if "deployed in" in line])

    @emulated
    def test_device_tests_pass_on_the_stock_firmware_which_shows_its_banner(self, deployed):
        # the HTTPS script's servers, reached from the board through the forwards
        board, ports = deployed
        proc = subprocess.run([ONBOARD, "test-device", "--port", board.ready["repl"],
                               "--host", "192.168.4.100", "--https-ports", "%d,%d" % tuple(ports),
                               "--wifi-ssid", "Espressif"],
                              capture_output=True, text=True, timeout=600)
        print(proc.stdout[-3000:], proc.stderr[-2000:])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        # the board listed its library (with each file's hash), and it matched what the
        # deploy put there: at most the build stamp is copied again (each build renews
        # it, the host tests' too)
        assert re.search(r"^onboard/: [01] file\(s\) to copy", proc.stdout, re.M), (
            proc.stdout[-3000:])
        library = [line.split()[1] for line in proc.stdout.splitlines()
                   if line.startswith("wrote onboard/")]
        assert {Path(path).name for path in library} <= {"_build.mpy"}, proc.stdout[-3000:]
        passed = [int(n) for n in re.findall(r"^(\d+) passed, 0 failed$", proc.stdout, re.M)]
        assert sum(passed) > 0, "no device test ran"
        banner = [line for line in board.log if BANNER.search(line)]
        print("the board's banner:", banner[:1])
        assert banner, "no firmware banner in the board's output:\n" + board.log_text()


# -- power cuts (make test-esp32-cuts) ----------------------------------------------------------

WRITER = """
import board
from onboard.store import Store
s = Store(board.store_path())
n = s.get('cloud').get('n', 0)
print('@event {"state": "WRITING", "from": %d}' % n)
while True:
    n += 1
    s.put('cloud', n=n, token='tok%d' % n)
    print('@event {"state": "WROTE", "n": %d}' % n)  # put() returned: this one is stored
"""
# cuts per run: two in make test (its ESP32 part is its longest), eight under
# make test-esp32-cuts (ONBOARD_ESP32_CUTS); each at a random moment of a write
CUTS = 8 if os.environ.get("ONBOARD_ESP32_CUTS") else 2
READ_BACK = """
from onboard.store import Store
cloud = Store(%r).get('cloud')
print(cloud.get('n', 0), cloud.get('token'))
"""


@cuts
def test_a_power_cut_during_store_writes_leaves_the_old_or_the_new_record(tmp_path, boards, mpy):
    flash = tmp_path / "flash.bin"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    last = 0
    for cycle in range(CUTS):
        board = boards(flash, "--offline")
        board.wait_state("WAIT_CONFIG")
        threading.Thread(target=board.mpremote, args=("run", str(script)),
                         kwargs={"timeout": 600}, daemon=True).start()
        assert board.wait_state("WRITING")["from"] == last  # this boot reads what the host read
        # cut while it writes, at a random moment of a write: after its k-th and (k+1)-th
        # writes since this boot (k = 1..5), within the time one write has just taken
        target = last + random.randint(1, 5)
        one = board.wait_state("WROTE", until=lambda e, t=target: e["n"] >= t)
        two = board.wait_state("WROTE", until=lambda e, t=one["n"]: e["n"] > t)
        time.sleep(random.uniform(0, two["t"] - one["t"]))
        stored = two["n"]
        assert board.power_cut() != 0
        out = tmp_path / f"files{cycle}"
        esp32.extract(flash, out)
        n, token = mpy.run(READ_BACK % str(out / "onboard.json")).lines[-1].split()
        # the record is whole (its two fields from one write), and it is the last write that
        # returned before the cut or one after it (in flight when the power went)
        assert token == f"tok{n}", f"cycle {cycle}: a torn record: n={n} token={token}"
        assert int(n) >= stored, f"cycle {cycle}: the store holds {n}, {stored} was stored"
        last = int(n)
