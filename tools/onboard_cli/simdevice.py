"""A simulated device run by `onboard device run`, for `onboard sim`,
`onboard fleet` and the host tests: it starts the device, collects its
events as they come, and waits for states."""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from .paths import LIB, run_micropython, stop_process

_READ_STORE = """
import json
from onboard import log
from onboard.store import Store
log.level = log.ERROR
s = Store(%r)
data = s.load()
print("@store " + json.dumps({"gen": s._gen, "status": s.status, "data": data}))
"""


def read_store(flash):
    """{"gen", "status", "data"} of the record in a flash folder, read by the
    product's own Store on the Unix port (lib/): checksum, schema and the
    fall back to the previous generation exactly as the device's load().
    load() writes nothing, so a running device is not disturbed."""
    run = run_micropython(_READ_STORE % str(Path(flash) / "onboard.json"), [LIB], timeout=60)
    for line in run.stdout.splitlines():
        if line.startswith("@store "):
            return json.loads(line[7:])
    raise AssertionError(f"the store reader failed:\n{run.stdout}{run.stderr}")

LOOPBACK = ("127.0.0.1", "localhost")


def _until(check, timeout, failure):
    """check()'s first true answer, asked every 50 ms; after timeout s, an
    AssertionError saying failure()."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(failure())
        time.sleep(0.05)


def check_time_sources(config):
    """ValueError unless every time source of config is on loopback."""
    import urllib.parse

    time_cfg = config.get("time", {})
    hosts = [str(s).split(":")[0] for s in time_cfg.get("ntp", ["pool.ntp.org"])]
    if time_cfg.get("http"):
        hosts.append(urllib.parse.urlsplit(time_cfg["http"]).hostname)
    for host in hosts:
        if host not in LOOPBACK:
            raise ValueError(f"time: {host} is not on loopback; simulated devices only "
                             "ask loopback time servers (cloudsim's)")


class Device:
    """A simulated device run by `onboard device run`; events are collected
    from its stdout as they come."""

    def __init__(self, workdir, config=None, radio=None, serial=None, portal_port=0,
                 heapsize=None, mpy=False, romfs=None, air=False):
        """air: the stand-in radio shows the access point in the file
        workdir/air, for air_ap()."""
        self.dir = workdir
        self.flash = workdir / "flash"
        # no time server unless the config names one on loopback (cloudsim's):
        # a simulated device never sends a packet to a public time server
        self.config = {"profile": "blynk", "vendor": "Acme", "name": "Sensor", "fw_ver": "1.0.0",
                       "tmpl_id": "TMPL1a2b3c4d", "portal": {"idle_timeout_s": 600},
                       "time": {"ntp": []}, **(config or {})}
        check_time_sources(self.config)
        (workdir / "config.json").write_text(json.dumps(self.config))
        self.radio_path = workdir / "radio.json"
        self.set_radio(radio if radio is not None else DEFAULT_RADIO)
        self.events = []
        self._queue = queue.Queue()
        cmd = [sys.executable, "-m", "onboard_cli.main", "device", "run",
               "--flash", str(self.flash), "--config", str(workdir / "config.json"),
               "--radio", str(self.radio_path)]
        if portal_port:
            cmd += ["--portal-port", str(portal_port)]
        if serial:
            cmd += ["--serial", str(serial)]
        if heapsize:
            cmd += ["--heapsize", str(heapsize)]
        if mpy:
            cmd.append("--mpy")
        if romfs:
            cmd += ["--romfs", str(romfs)]
        self.log_path = workdir / "device.log"
        self._log = open(self.log_path, "a")
        self._log_start = self._log.tell()  # a device booted again on this flash logs here too
        env = dict(os.environ, ONBOARD_AIR=str(workdir / "air")) if air else None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     start_new_session=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(json.loads(line))
        self._queue.put(None)

    def set_radio(self, networks, deaf=0):
        """The networks in the air; deaf (not 0): the station hears none of
        them until its radio is turned off (boards/unix/network.py)."""
        self._write(self.radio_path, json.dumps({"networks": networks, "deaf": deaf}))

    @staticmethod
    def _write(path, text):
        # in one step: the device reading the file meanwhile finds the old
        # text or the new, never a part ("press 2" of "press 2000")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def wait_for(self, wanted, what, timeout=20):
        """The next event for which wanted(event) is true; AssertionError
        naming what when none comes within timeout or the device exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {what} within {timeout} s; events: {self.events}; "
                                     f"log:\n{self.log_path.read_text()[-3000:]}") from None
            if event is None:
                raise AssertionError(f"device exited; log:\n{self.log_path.read_text()[-3000:]}")
            self.events.append(event)
            if wanted(event):
                return event

    def wait_state(self, state, timeout=20, last_error=None):
        """The next event with this state (and last_error, if given)."""
        def wanted(e):
            return e["state"] == state and last_error in (None, e["last_error"])
        return self.wait_for(wanted, state, timeout)

    def button(self, down):
        """Hold (True) or release the simulated button."""
        self._write(self.dir / "button", "down" if down else "up")

    def press(self, ms):
        """One press of the simulated button, ms long, timed by the device."""
        self._presses = getattr(self, "_presses", 0) + 1
        self._press = f"press {ms} {self._presses}"
        self._write(self.dir / "button", self._press)

    def release_seen(self, reads=2, timeout=30):
        """Wait until the device has read the button released `reads` times
        (at most 3) since the end of the last press(): with 2, it has also
        acted on the first of them, as it reads the button again only after."""
        def read():
            try:
                press, _, seen = (self.dir / "button.ups").read_text().rpartition(" ")
            except FileNotFoundError:
                return False
            return press == self._press and seen.isdigit() and int(seen) >= reads
        _until(read, timeout, lambda: f"the button's release was not read {reads} times")

    def air_ap(self):
        """(authmode, essid) of the access point as a phone scanning the air
        sees it (0 open, 3 WPA2-PSK), or None while none is up. (air=True)"""
        try:
            mode, _, essid = (self.dir / "air").read_text().partition(" ")
        except FileNotFoundError:
            return None
        return int(mode), essid

    def led(self):
        """(calls, the last 64 of them: "1" on, "0" off) as the board set its LED."""
        try:
            calls, last = (self.dir / "led").read_text().split()
        except FileNotFoundError:
            return 0, ""
        return int(calls), last

    def led_after(self, calls, count, timeout=20):
        """The LED's next count settings after the first `calls` ("1"/"0")."""
        def read():
            now, last = self.led()
            if now - calls > len(last):
                raise AssertionError("the LED changed faster than it could be read")
            return last[len(last) - (now - calls):][:count] if now >= calls + count else ""
        return _until(read, timeout,
                      lambda: f"the LED was set {self.led()[0] - calls} times, not {count}")

    def wait_note(self, key, timeout=20):
        """The next event carrying key (renewed, retry_in, message, ...)."""
        return self.wait_for(lambda e: key in e, key, timeout)

    def wait_message(self, topic, timeout=20):
        while True:
            event = self.wait_note("message", timeout)
            if event["message"] == topic:
                return event

    def wait_logged(self, text, timeout=20):
        """Wait until text is in the device's log. (Its runner relays the log
        a moment after the device wrote it: what the device said on another
        line, the serial one, may arrive first.)"""
        _until(lambda: text in self.log_path.read_text(), timeout,
               lambda: f"{text!r} not logged within {timeout} s")

    def shown(self):
        """What the device has shown so far, where a secret must never be: its
        log and the events waited for, as one text."""
        return self.log_path.read_text() + json.dumps(self.events)

    def restarts(self):
        """How often the device process was started again (a reboot)."""
        with open(self.log_path) as f:
            f.seek(self._log_start)
            return f.read().count("@boot ") - 1

    def _record(self):
        return read_store(self.flash)

    def store_generation(self):
        """The generation of the record Store loads from the flash (0: none)."""
        return self._record()["gen"]

    def store_status(self):
        """Store.status after a load: ok, previous, empty or damaged."""
        return self._record()["status"]

    def store(self):
        """The record as Store loads it from the device's flash."""
        return self._record()["data"]

    def kill(self):
        """Power off: SIGKILL the device and its runner at once."""
        self._end_group()
        self.proc.wait()
        self._log.close()

    def stop(self, grace=10):
        """Stop the runner, which stops the device; then kill whatever of
        their process group is left (a device whose runner was killed after
        grace seconds, or that one started after being told to stop): no
        device outlives stop() to write to its folder afterwards."""
        stop_process(self.proc, grace)
        self._end_group()
        self._log.close()

    def _end_group(self):
        # SIGKILL to the runner's process group, then wait until none of it
        # runs: a SIGKILL takes effect when the kernel next runs the process,
        # and on a loaded machine the device was seen running just after
        # killpg (a device booted again on its flash would meet it there)
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while running_in_group(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)


def running_in_group(pgid):
    """The processes of this process group that still run (zombies left out:
    whoever reaps orphans here may take its time)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # (gone meanwhile)
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(pid))
    return found


DEFAULT_RADIO = [
    {"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -50, "sec": "WPA2", "ch": 6,
     "password": "correct horse", "behaviour": "ok"},
    {"ssid": "home", "bssid": "aa:bb:cc:00:00:02", "rssi": -71, "sec": "WPA2", "ch": 1,
     "password": "correct horse", "behaviour": "ok"},
    {"ssid": "cafe", "bssid": "aa:bb:cc:00:00:03", "rssi": -60, "sec": "OPEN", "ch": 11,
     "password": "", "behaviour": "ok"},
]
