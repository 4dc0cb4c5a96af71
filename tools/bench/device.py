"""Figures of the cloud profiles and the whole device: renewal heap, .mpy
sizes, store writes over a simulated day and a fleet of 100 (heap: bench.heap)."""

import json
import re
import subprocess
import sys
from pathlib import Path

from onboard_cli import manifest
from onboard_cli.build import compile_one
from onboard_cli.paths import BUILD, ROOT, tool
from onboard_cli.romfs import make_image

from .measure import PATH, mpy_size, run_micropython, workdir

PROFILES = ("blynk", "spokezone", "plgd", "allthingstalk", "imp")

# A stand-in for the runtime, enough for a profile's renewal function.
RENEW = """
import asyncio, gc, micropython
from onboard.store import Store

class RT:
    def __init__(self, config):
        self.config = config
        self.store = Store("onboard.json")
        self.notes = 0
    def uid(self):
        return "bench-cpu"
    def note(self, **kw):
        self.notes += 1

rt = RT(CONFIG)
rt.store.put("cloud", **CLOUD)
{op}
"""

SPOKEZONE_RENEW = """
from onboard.clouds.spokezone import renew
gc.collect()
base = micropython.mem_current()
asyncio.run(renew(rt, rt.store.get("cloud")))
print("PEAK", micropython.mem_peak() - base)
"""

DAY = """
import sys
from onboard.clouds.spokezone import renew
before = rt.store.writes
for hour in range(24):
    token, new = asyncio.run(renew(rt, rt.store.get("cloud")))
    if new:  # as the runtime does: stored before it is used
        rt.store.put("cloud", token=token)
        rt.note(renewed=True)
    print("HOUR", hour)
    sys.stdin.readline()  # the host moves cloudsim's clock on by an hour
print("WRITES", rt.store.writes - before, "NOTES", rt.notes)
"""


def onboard(*args, timeout=600):
    return subprocess.run([str(Path(sys.executable).with_name("onboard")), *args],
                          capture_output=True, text=True, timeout=timeout)


def spokezone_device(sim):
    sz = sim.clouds["spokezone"]
    # Spoke Zone's device ids are positive integers (a token naming another is refused)
    sz.devices[9001] = {"cpuId": "bench-cpu", "uuid": "bench-uuid", "name": "bench"}
    return sz.device_token(9001)


def renewal_rows(sim, d):
    rows = []
    ca = str(sim.dir / "ca.pem")
    api = f"https://127.0.0.1:{sim.https_port}"
    sim.lifetimes["spokezone"] = 3600
    token = spokezone_device(sim)
    setup = (f"CONFIG = {{'api': {api + '/spokezone'!r}, 'ca': {ca!r}}}\n"
             f"CLOUD = {{'token': {token!r}, 'uuid': 'bench-uuid', 'cpu_id': 'bench-cpu'}}\n")
    out = run_micropython(setup + RENEW.format(op=SPOKEZONE_RENEW), PATH, cwd=d)
    peak = re.search(r"PEAK (\d+)", out.stdout)
    rows.append(("profiles", "one renewal, spokezone (mem_peak)",
                 int(peak[1]) if peak else f"failed: {out.stdout[-200:]}", "B", ""))
    # (plgd's refresh is a CoAP exchange now: the plgd group measures it)
    return rows


def day_rows(sim, d):
    """24 hourly renewals of a 1 h token: the store is written once per renewal."""
    import os
    ca = str(sim.dir / "ca.pem")
    sim.lifetimes["spokezone"] = 3600
    token = spokezone_device(sim)
    (Path(d) / "onboard.json").unlink(missing_ok=True)
    script = (f"CONFIG = {{'api': 'https://127.0.0.1:{sim.https_port}/spokezone', 'ca': {ca!r}}}\n"
              f"CLOUD = {{'token': {token!r}, 'uuid': 'bench-uuid', 'cpu_id': 'bench-cpu'}}\n"
              + RENEW.format(op=DAY))
    path = Path(d) / "day.py"
    path.write_text(script)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", *map(str, PATH)]))
    proc = subprocess.Popen([tool("micropython"), str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=d, env=env)
    writes = None
    for line in proc.stdout:
        if line.startswith("HOUR"):
            sim.clock_offset += 3600  # an hour passes in the cloud
            proc.stdin.write("\n")
            proc.stdin.flush()
        elif line.startswith("WRITES"):
            _, writes, _, notes = line.split()
            writes, notes = int(writes), int(notes)
    proc.wait()
    sim.clock_offset = 0
    if writes is None:
        return [("profiles", "store writes over a simulated day", "failed", "", "")]
    return [("profiles", "store writes over a simulated day, 1 h tokens (24 renewals)", writes,
             "", f"= renewals ({notes})")]


def size_rows():
    rows = []
    for profile in PROFILES:
        rows.append(("profiles", f"clouds/{profile}.mpy", mpy_size("clouds." + profile), "B",
                     "<= 2,500 B"))
    # the Blynk product's modules are its components' (manifests/onboard-blynk and what
    # it requires), so this figure and what `make firmware CLOUD=blynk` freezes agree
    modules = [t[len("onboard/"):-3].replace("/", ".") for t in manifest.modules("blynk")]
    lib = sum(mpy_size(m) for m in modules)
    with workdir() as d:
        board = 0
        for src in (ROOT / "boards" / "esp32_generic" / "board.py",
                    ROOT / "boards" / "esp32_common.py"):
            out = Path(d) / (src.stem + ".mpy")
            compile_one(tool("mpy-cross"), src, src.name, out)
            board += out.stat().st_size
        image = make_image(Path(d) / "blynk.romfs", ("blynk",), "esp32_generic")
    rows.append(("device", f"a Blynk product's .mpy (sum of its components: {len(modules)} "
                 "modules) + the board's", lib + board, "B", "<= 28,000 B (issue 14)"))
    rows.append(("device", "  of which onboard's components (core, net, setup, blynk)", lib, "B",
                 ""))
    rows.append(("device", "  its ROMFS image (make romfs CLOUD=blynk)", image, "B", ""))
    rows.append(("device", "all of lib/", sum(p.stat().st_size for p in
                                              (BUILD / "onboard").rglob("*.mpy")), "B", ""))
    return rows


def fleet_rows(devices=100):
    run = onboard("fleet", "--devices", str(devices), timeout=1200)
    try:
        summary = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [("device", f"fleet of {devices}", "failed", "", "all online")]
    t = summary["online_s"] or {}
    return [("device", f"fleet of {devices}: online", f"{summary['online']}/{devices}", "",
             "all"),
            ("device", "  time to online median / p95", f"{t.get('median')} / {t.get('p95')}",
             "s", ""),
            ("device", "  retries, setup twice", f"{summary['retries']}, "
             f"{summary['setup_twice']}", "", "-, 0")]


def figures():
    from cloudsim.app import Cloudsim

    rows = size_rows()
    with workdir() as d:
        sim = Cloudsim(Path(d) / "cloudsim", log=lambda line: None).start()
        try:
            rows += renewal_rows(sim, d)
            rows += day_rows(sim, d)
        finally:
            sim.stop()
    rows += fleet_rows()
    return rows


def quick():
    """The same without the fleet and the heap search, for a fast look."""
    from cloudsim.app import Cloudsim

    rows = size_rows()
    with workdir() as d:
        sim = Cloudsim(Path(d) / "cloudsim", log=lambda line: None).start()
        try:
            rows += renewal_rows(sim, d) + day_rows(sim, d)
        finally:
            sim.stop()
    return rows
