"""Where things are, and how to run the Unix port of MicroPython."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = Path(os.environ.get("ONBOARD_LIB") or ROOT / "lib")  # onboard mutate: a copy
BUILD = ROOT / "build"
TESTS_DEVICE = ROOT / "tests_device"
BOARD_UNIX = ROOT / "boards" / "unix"


class ToolError(Exception):
    """A failure the CLI reports as one line and a non-zero exit."""


def tool(name):
    """A console script of this environment (beside this Python), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ToolError(f"{name} not found: run `make setup`")
    return found


def mpremote():
    """The command line that runs mpremote on a board (onboard_cli.mpr: mpremote
    with room for a slow filesystem)."""
    return [sys.executable, "-m", "onboard_cli.mpr"]


def micropython():
    return os.environ.get("MICROPYTHON") or tool("micropython")


def micropython32():
    """The 32-bit build of the Unix port (an ESP32's pointers, small ints and
    ticks range): MICROPYTHON32, else ../shared/tools/micropython32; None
    when there is none."""
    path = os.environ.get("MICROPYTHON32") or ROOT.parent / "shared" / "tools" / "micropython32"
    return Path(path) if Path(path).is_file() and os.access(path, os.X_OK) else None


def run_micropython(script, path, heapsize=None, timeout=120, cwd=None):
    """Run a MicroPython source text with `path` folders on MICROPYPATH."""
    cmd = [micropython()]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    cmd += ["-c", script]
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", *map(str, path)]))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def stop_process(proc, grace=10):
    """SIGTERM, then SIGKILL if it has not exited after grace seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
