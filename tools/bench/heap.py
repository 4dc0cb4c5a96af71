"""Heap figures, on the 64-bit Unix port and, when ../shared/tools/micropython32
exists (or MICROPYTHON32 names one), on a 32-bit build whose 4-byte pointers
and 16-byte blocks are an ESP32's: the smallest working -X heapsize (bisected
in 256-byte steps) of whole device lives (`onboard sim --mpy`), of one HTTPS
POST and of one MQTT connect + QoS 1 publish, and the live heap in each state.

The goals: issue 9's figures of d2af53e (64-bit, measured the same way) and
issue 14's for the 32-bit build."""

import base64
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from onboard_cli.paths import micropython32

from . import network as N
from . import stock
from .measure import smallest, smallest_heap, workdir

# d2af53e, 64-bit, measured as below (issue 9: none may grow)
BEFORE_64 = {"life blynk": 105_984, "https": 25_043, "mqtt plain": 15_334, "mqtt tls": 31_941}
# every profile with a life in `onboard sim` (issue 14: all reported, none grows)
LIVES = ("blynk", "spokezone", "allthingstalk", "plgd")
# The lives issue 14's goals are on (32-bit) are bisected this many times: near
# its smallest heap the same life passes in one run and fails in the next (a
# run's timing moves what is allocated where), so one bisection is one draw,
# which moved by up to three 256 B steps from run to run (ROMFS: 32,512 and
# 33,280 B on one image). The figure is the largest: a heap every run worked in.
RUNS_32 = 3
STATES = ("WAIT_CONFIG", "CONFIGURING", "CONNECTING_NET", "CONNECTING_CLOUD", "RUNNING")
GOALS_32 = {"life blynk": "<= 40,960 B (issue 14)", "life blynk romfs": "<= 28,672 B (issue 14)",
            "life blynk serial": "report (b93794d: 50,432 B, Improv loaded in setup mode)"}
# Issue 14's "none grows": each profile's figures when it was first measured,
# by that commit's own `onboard sim --mpy`: Blynk and Spoke Zone at 8d833ec,
# where issue 14 started, AllThingsTalk and plgd at a30e817, which gave them
# a life in the sim. Live heap (--report-heap, the largest of each state over
# the life): the smallest of 4-5 lives, as those commits' lives varied by up
# to 8 KB from run to run (a closed TLS socket was kept or not). Smallest
# heap: one bisection by smallest_life's rule. Their lives loaded the
# stand-in radio's code from a file, which today's do not: about 1.5 KB of
# each of those figures (radio_stand_in) was not onboard's.
BEFORE_14 = {
    "64-bit": {
        "blynk": ("8d833ec", (109_216, 105_984, 91_360, 91_168, 97_280)),
        "spokezone": ("8d833ec", (98_528, 95_296, 80_672, 80_800, 87_872)),
        "allthingstalk": ("a30e817", (76_992, 77_568, 65_440, 64_736, 79_136)),
        "plgd": ("a30e817", (90_528, 91_104, 78_976, 78_272, 88_480)),
    },
    "32-bit": {
        "blynk": ("8d833ec", (65_968, 63_968, 53_904, 54_416, 57_264)),
        "spokezone": ("8d833ec", (67_200, 65_200, 55_136, 55_104, 58_624)),
        "allthingstalk": ("a30e817", (50_880, 51_040, 42_976, 42_624, 51_824)),
        "plgd": ("a30e817", (59_488, 59_648, 51_568, 51_216, 57_888)),
    },
}
BEFORE_14_LIFE = {"64-bit": {"spokezone": 114_944, "allthingstalk": 91_392, "plgd": 104_448},
                  "32-bit": {"spokezone": 86_528, "allthingstalk": 56_576, "plgd": 69_376}}


@contextmanager
def interpreter(path):
    """Everything in the block (and the processes it starts) runs on path."""
    old = os.environ.get("MICROPYTHON")
    if path:
        os.environ["MICROPYTHON"] = str(path)
    try:
        yield
    finally:
        if path:
            if old is None:
                os.environ.pop("MICROPYTHON", None)
            else:
                os.environ["MICROPYTHON"] = old


def onboard(*args, timeout=300):
    return subprocess.run([str(Path(sys.executable).with_name("onboard")), *args],
                          capture_output=True, text=True, timeout=timeout)


def life_ok(profile, heapsize, romfs=None, serial=False):
    with workdir() as d:
        run = onboard("sim", "--profile", profile, "--mpy", "--heapsize", str(heapsize),
                      *(["--romfs", str(romfs)] if romfs else []),
                      *(["--serial", str(Path(d) / "tty")] if serial else []))
    return run.returncode == 0 and "states" in run.stdout


def largest(figures):
    """The largest of several runs' smallest heaps (a "> high" one, a life
    that failed even there, outranks every number; "<= low" ranks below)."""
    def rank(f):
        if isinstance(f, int):
            return f
        return float("inf") if f.startswith(">") else 0
    return max(figures, key=rank)


def smallest_life(profile, low=32_768, high=196_608, romfs=None, serial=False):
    """The smallest heapsize (to 256 B) from which the whole life completes,
    with no ERROR on the way, at it and at the ABOVE sizes above it (with
    romfs: the library from that ROMFS image, outside the heap; serial: the
    device has a serial line, as a board its USB, that nobody speaks on)."""
    if not life_ok(profile, high, romfs, serial):
        return f"> {high:,}"
    if life_ok(profile, low, romfs, serial):
        return f"<= {low:,}"
    return smallest(lambda h: life_ok(profile, h, romfs, serial), low, high)


def radio_stand_in():
    """Live bytes the Unix board's `network` module holds once imported and
    its two interfaces made, as every life runs it (`--mpy`: from the board's
    firmware image, so its objects only; on an ESP32 the module is firmware)
    and, for comparison, loaded from a file (its code too)."""
    from onboard_cli.device import rom_launch
    from onboard_cli.paths import BUILD, run_micropython
    from onboard_cli.romfs import unix_firmware

    held = ("import gc\ngc.collect()\nn = gc.mem_alloc()\nimport network\n"
            "network.WLAN(network.STA_IF)\nnetwork.WLAN(network.AP_IF)\n"
            "gc.collect()\nprint(gc.mem_alloc() - n)\n")
    with workdir() as d:
        script = Path(d) / "radio.py"
        script.write_text(held)
        rom = run_micropython(rom_launch(unix_firmware(), script), ["board_unix", "/rom"],
                              cwd=BUILD)
    # a short path, as `onboard device run` gives (its __file__ is interned)
    file = run_micropython(held, ["board_unix"], cwd=BUILD)
    return int(rom.stdout.split()[-1]), int(file.stdout.split()[-1])


# MicroPython keeps the names it interns (qstrs) in pools, each twice the
# size of the last, added when the last is full and never freed: a pool's
# bytes are paid whole at its first name. This script interns names one by
# one and prints, for each pool added, how many names there were then and
# the pool's bytes (text is kept apart, in chunks of 128 B: not counted).
_POOLS = """
import gc, micropython
micropython.qstr_info()
gc.collect()
last = gc.mem_alloc()
for i in range(1400):
    getattr(micropython, "zq%dq" % i, 0)
    gc.collect()
    n = gc.mem_alloc()
    if n - last > 256:
        print("POOL", i, n - last)
    last = n
"""


def name_pools():
    """[(the names interned once a pool was added, its bytes)], as this
    interpreter grows its names' pools."""
    from onboard_cli.paths import run_micropython

    out = run_micropython(_POOLS, []).stdout
    start = int(re.search(r"n_qstr=(\d+)", out)[1])
    return [(start + int(i) + 1, int(size)) for i, size in re.findall(r"^POOL (\d+) (\d+)$",
                                                                        out, re.M)]


def last_pool(names, pools):
    """What the names of a life cost in pools: (the last pool's bytes, the
    name that added it, the names fewer that would have spared it)."""
    at, size = max((p for p in pools if p[0] <= names), default=(0, 0))
    return size, at, names - at + 1


def live_per_state(profile):
    """The largest live heap of each state over one life, and under "names"
    and "names bytes" the most names it had interned (MicroPython's qstrs:
    never freed, so the last report's) and the heap they took."""
    run = onboard("sim", "--profile", profile, "--mpy", "--report-heap")
    per_state = {"names": 0, "names bytes": 0}
    # state changes only: a note (renewed, online, ...) names what it reports after its heap
    for m in re.finditer(r"\s([A-Z_]+)\s+last_error \d+\s+heap\s+(\d+)"
                         r"(?: names (\d+) \((\d+) B\))?(?: portal \S+)?$", run.stdout, re.M):
        per_state[m[1]] = max(per_state.get(m[1], 0), int(m[2]))
        if m[3]:
            per_state["names"] = max(per_state["names"], int(m[3]))
            per_state["names bytes"] = max(per_state["names bytes"], int(m[4]))
    return per_state


def exchanges(sim, d, stock_mpy):
    """Smallest heaps of one HTTPS POST and one MQTT connect + publish, onboard's
    and (stock_mpy: their .mpy folder, else None) requests' and umqtt.simple's."""
    ca = str(sim.dir / "ca.pem")
    (sim.dir / "ca.der").write_bytes(sim.ca.der())
    setup = N.HTTPS_SETUP.format(
        url=f"https://127.0.0.1:{sim.https_port}/imp/v5/enroll", ca=ca,
        auth="Basic " + base64.b64encode(sim.admin_token.encode()).decode())
    out = {"https": smallest_heap(setup + N.onboard_https(), cwd=d)}
    if stock_mpy:
        out["https stock"] = smallest_heap(stock.first_on_path(stock_mpy) + setup
                                           + stock.REQUESTS_HTTPS, cwd=d)
        # requests verifies no certificate: what verifying costs, measured on the floor
        out["https verifying"] = (smallest_heap(setup + N.FLOOR_HTTPS, cwd=d)
                                  - smallest_heap(setup + N.FLOOR_HTTPS_UNVERIFIED, cwd=d))
    token = "bench-heap-" + base64.b16encode(sim.admin_token[:6].encode()).decode()
    sim.broker.allow(token, token)
    for tls, port in ((False, sim.broker.mqtt_port), (True, sim.broker.mqtts_port)):
        setup = N.MQTT_SETUP.format(port=port, token=token, ca=ca, tls=tls)
        key = "mqtt tls" if tls else "mqtt plain"
        out[key] = smallest_heap(setup + N.onboard_mqtt(), cwd=d)
        if tls:
            out[key + ", their context"] = smallest_heap(setup + N.onboard_mqtt_their_context(),
                                                         cwd=d)
        if stock_mpy:
            out[key + " stock"] = smallest_heap(stock.first_on_path(stock_mpy) + setup
                                                + stock.UMQTT, cwd=d)
    return out


# onboard's exchange -> (micropython-lib's client, how it differs)
STOCK = {"https": ("requests", "verifies no certificate"),
         "mqtt plain": ("umqtt.simple", ""), "mqtt tls": ("umqtt.simple", "same CA")}


def before(now, was, commit):
    """The goal text of figures that must not grow past was (issue 14): the
    figures then, and GREW naming each that did (0 now: not measured, a
    failure; a smallest heap of "> high" grew, one of "<= low" did not)."""
    now = now if isinstance(now, (list, tuple)) else (now,)
    grew = [i for i, (n, w) in enumerate(zip(now, was))
            if (n.startswith(">") if isinstance(n, str) else not 0 < n <= w)]
    text = "<= " + " / ".join(f"{w:,}" for w in was) + f" B ({commit})"
    if grew:
        text += " GREW: " + ", ".join(STATES[i] if len(was) > 1 else "it" for i in grew)
    return text


def stock_rows(bits, figs):
    """Each exchange side by side with micropython-lib's client (issue 14:
    onboard's no heavier)."""
    rows = []
    for key, (name, how) in STOCK.items():
        theirs = figs.get(key + " stock")
        if theirs is None:
            continue
        verdict = "ok" if figs[key] <= theirs else "HEAVIER"
        rows.append(("heap", f"{bits}:   {key}: {name} (.mpy){', ' + how if how else ''}",
                     theirs, "B", f"onboard {figs[key]:,} B: {verdict} (issue 14: <= {name})"))
        if key + ", their context" in figs:
            ours = figs[key + ", their context"]
            rows.append(("heap", f"{bits}:   {key}: onboard.mqtt, the context made by "
                         f"umqtt.simple's lines", ours, "B",
                         f"umqtt.simple {theirs:,} B: {'ok' if ours <= theirs else 'HEAVIER'}"
                         " (the clients alone)"))
        if key == "https" and "https verifying" in figs:
            # like for like: requests with what verifying costs the floor added
            like = theirs + figs["https verifying"]
            rows.append(("heap", f"{bits}:   https: requests + verifying (the floor's "
                         f"{figs['https verifying']:,} B)", like, "B",
                         f"onboard {figs[key]:,} B: {'ok' if figs[key] <= like else 'HEAVIER'}"
                         " (estimate, like for like)"))
    return rows


def figures():
    from cloudsim.app import Cloudsim
    from onboard_cli.romfs import make_image

    builds = [("64-bit", None)]
    m32 = micropython32()
    rows = []
    if m32:
        builds.append(("32-bit", m32))
    else:
        rows.append(("heap", "32-bit build", "absent", "",
                     "../shared/tools/micropython32 (or MICROPYTHON32=)"))
    if stock.where() is None:
        rows.append(("heap", "requests / umqtt.simple side by side", "absent", "",
                     "MICROPYTHON_LIB=<micropython-lib checkout>"))
    with workdir() as images:
        # every cloud and, as a board's image holds its board's, the Unix board's modules
        image = Path(images) / "onboard.romfs"
        make_image(image, board="unix")
        for bits, path in builds:
            rows += build_rows(bits, path, image, Cloudsim)
    return rows


def build_rows(bits, path, image, Cloudsim):
    """The heap rows of one interpreter build (64-bit, or 32-bit at path)."""
    rows = []
    with interpreter(path):
        figs, runs = {}, {}
        lives = {"life " + profile: {"profile": profile} for profile in LIVES}
        lives["life blynk romfs"] = {"profile": "blynk", "low": 16_384, "romfs": image}
        lives["life blynk serial"] = {"profile": "blynk", "serial": True}
        for key, kw in lives.items():
            n = RUNS_32 if bits == "32-bit" and key in GOALS_32 else 1
            runs[key] = [smallest_life(**kw) for _ in range(n)]
            figs[key] = largest(runs[key])
        with workdir() as d:
            sim = Cloudsim(Path(d) / "cloudsim", log=lambda line: None).start()
            try:
                figs.update(exchanges(sim, d, stock.compiled(d)))
            finally:
                sim.stop()
        names = {"life blynk": "whole Blynk life (make sim)",
                 "life blynk romfs": "whole Blynk life, onboard from a ROMFS image",
                 "life blynk serial": "whole Blynk life, a serial line beside (as a board's "
                                      "USB) that nobody speaks Improv on",
                 "life spokezone": "whole Spoke Zone life",
                 "life allthingstalk": "whole AllThingsTalk life",
                 "life plgd": "whole plgd life",
                 "https": "one HTTPS POST (import + request)",
                 "mqtt plain": "MQTT connect + QoS 1 publish 64 B, plain",
                 "mqtt tls": "MQTT connect + QoS 1 publish 64 B, TLS"}
        for key, name in names.items():
            if bits == "64-bit" and key in BEFORE_64:
                goal = f"<= {BEFORE_64[key]:,} B (d2af53e)"
            else:
                goal = GOALS_32.get(key, "") if bits == "32-bit" else ""
            if not goal and key[5:] in BEFORE_14_LIFE[bits]:
                goal = before(figs[key], (BEFORE_14_LIFE[bits][key[5:]],),
                              BEFORE_14[bits][key[5:]][0])
            if len(runs.get(key, ())) > 1:
                goal += " · runs: " + " / ".join(
                    f"{r:,}" if isinstance(r, int) else r for r in runs[key])
            rows.append(("heap", f"{bits}: {name}: smallest -X heapsize", figs[key], "B",
                         goal))
        rows += stock_rows(bits, figs)
        commit, was = BEFORE_14[bits]["blynk"]
        live = live_per_state("blynk")
        for state, then in zip(STATES, was):
            rows.append(("heap", f"{bits}:   live heap in {state}, Blynk life", live.get(state, 0),
                         "B", before(live.get(state, 0), (then,), commit)))
        # of that heap, for good: each module loaded interns its dotted name, its
        # short name and its file's path, each function its name and arguments
        rows.append(("heap", f"{bits}:   of it, names interned over the Blynk life (qstrs, "
                     "never freed): names / heap", f"{live['names']:,} / {live['names bytes']:,}",
                     "B", "report" + (" (lib of 7e683ba: 517 / 9,321 B)" if bits == "32-bit"
                                      else "")))
        size, at, fewer = last_pool(live["names"], name_pools())
        rows.append(("heap", f"{bits}:   of those, the names' last pool (added at the {at}th "
                     "name, paid whole)", size, "B",
                     f"report: {fewer} names fewer would spare it"))
        for profile in LIVES[1:]:
            live = live_per_state(profile)
            commit, was = BEFORE_14[bits][profile]
            now = [live.get(state, 0) for state in STATES]
            rows.append(("heap", f"{bits}:   live heap per state, {profile} life (WAIT_CONFIG "
                         "/ CONFIGURING / CONNECTING_NET / CONNECTING_CLOUD / RUNNING)",
                         " / ".join(f"{n:,}" for n in now), "B", before(now, was, commit)))
        objects, with_code = radio_stand_in()
        rows.append(("heap", f"{bits}:   of each: the Unix board's stand-in radio "
                     "(boards/unix/network.py, its code in the firmware image)", objects, "B",
                     f"firmware on an ESP32, not heap ({with_code:,} B with its code "
                     "loaded from a file, as the lives loaded it until 2026-12-01)"))
    return rows
