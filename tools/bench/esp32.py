"""Figures from the emulated ESP32 (QEMU, stock MicroPython v1.25.0): the GC heap
free and the ESP-IDF data heap free in each runtime state of a Blynk life (the
config's report_heap; boards/esp32_qemu adds both to each state event), their
minimum over the life, and the .mpy bytes deployed. Skipped without the emulator."""

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from onboard_cli import esp32
from onboard_cli.paths import BUILD, ToolError

LIFE_TIMEOUT = 600  # seconds; the emulator's speed follows the host's load
RETRIES = 3  # a life that does not get online: stop after this many retries


def _api(sim, path, body):
    import ssl

    ctx = ssl.create_default_context(cafile=str(sim.dir / "ca.pem"))
    req = urllib.request.Request(f"https://127.0.0.1:{sim.https_port}{path}", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {sim.admin_token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return json.loads(resp.read())


def _get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def blynk_life(folder):
    """The state events (with heap figures) of one Blynk life on the emulated board:
    empty flash, configured through its portal, until RUNNING or RETRIES retries."""
    from cloudsim.app import Cloudsim

    sim = Cloudsim(folder / "cloudsim", log=lambda line: None).start()
    proc = None
    try:
        prov = _api(sim, "/blynk/api/v1/organization/device/provision/token",
                    {"orgId": 1, "ownerId": 1})
        host = esp32.GUEST_HOST
        config = {"profile": "blynk", "vendor": "Acme", "name": "Sensor", "fw_ver": "1.0.0",
                  "tmpl_id": "TMPL1a2b3c4d", "ca": "/ca.pem", "wifi_timeout_s": 60,
                  "host": host, "port": sim.front.tls_port,
                  "api": f"https://{host}:{sim.https_port}/blynk",
                  "time": {"ntp": [], "http": f"http://{host}:{sim.http_port}/"},
                  "backoff": {"base": 1, "cap": 4}, "report_heap": True}
        (folder / "config.json").write_text(json.dumps(config))
        cmd = [str(Path(sys.executable).with_name("onboard")), "esp32", "run", "--offline",
               "--flash", str(folder / "flash.bin"), "--config", str(folder / "config.json"),
               "--ca", str(sim.dir / "ca.pem")]
        for name, port in (("https", sim.https_port), ("blynk", sim.front.tls_port),
                           ("date", sim.http_port)):
            cmd += ["--forward", f"{name}={port}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        deadline = time.monotonic() + LIFE_TIMEOUT
        ready, events, configured = None, [], False
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            event = json.loads(line)
            if ready is None:
                ready = event
                continue
            # state changes only (a note, such as a retry's, repeats the state)
            if "heap" in event and (not events or events[-1]["state"] != event["state"]):
                events.append(event)
            if event.get("state") == "WAIT_CONFIG" and not configured:
                portal = ready["portal"]
                _get(portal + "board_info.json")
                _get(portal + "wifi_scan.json")
                _get(portal + "config?" + urllib.parse.urlencode(
                    {"ssid": "Espressif", "pass": "", "blynk": prov["token"]}))
                configured = True
            if event.get("state") == "RUNNING" or event.get("attempt", 0) >= RETRIES:
                break
        return events, events[-1:] and events[-1]["state"] == "RUNNING", \
            sim.clouds["blynk"].devices[prov["deviceId"]]["active"]
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        sim.stop()


def figures():
    try:
        esp32.emulator()
    except ToolError as e:
        return [("esp32", "skipped", str(e), "", "")]
    mpy = sum(p.stat().st_size for p in (BUILD / "onboard").rglob("*.mpy"))
    rows = [("esp32", ".mpy bytes deployed", mpy, "B", "")]
    with tempfile.TemporaryDirectory(prefix="bench-esp32-") as tmp:
        events, online, active = blynk_life(Path(tmp))
    for e in events:
        rows.append(("esp32", f"{e['state']}: GC heap free / used", f"{e['gc_free']:,} / "
                     f"{e['heap']:,}", "B", ""))
        rows.append(("esp32", f"{e['state']}: ESP-IDF heap free", e["idf_free"], "B", ""))
    if events:
        rows.append(("esp32", "min GC heap free over the life",
                     min(e["gc_free"] for e in events), "B", ""))
        rows.append(("esp32", "min ESP-IDF heap free over the life",
                     min(e["idf_free"] for e in events), "B", ""))
    rows.append(("esp32", "Blynk life reached RUNNING", "yes" if online else "no", "",
                 "yes"))
    rows.append(("esp32", "cloudsim: device activated", "yes" if active else "no", "", "yes"))
    return rows
