"""Measuring lib/ as a device runs it: .mpy modules from build/, under the Unix port."""

import os
import tempfile
from pathlib import Path

from onboard_cli.paths import BUILD, TESTS_DEVICE, ToolError, run_micropython

# ONBOARD_BENCH_BUILD=<folder of .mpy> measures another build (another commit's
# lib/ compiled with mpy-cross) the same way, for before/after columns.
BUILD = Path(os.environ.get("ONBOARD_BENCH_BUILD") or BUILD)
PATH = [BUILD, TESTS_DEVICE]

# Everything before MARK is set-up; the figure counts from MARK to the end.
_ALLOC = """
import gc, micropython
{setup}
gc.collect()
_base = micropython.mem_current()
{op}
print("ALLOC", micropython.mem_peak() - _base)
"""


def _run(script, cwd, heapsize=None):
    return run_micropython(script, PATH, heapsize=heapsize, cwd=cwd)


def allocated(op, setup="", cwd=None):
    """Bytes allocated (micropython.mem_peak) from before op's imports to its end."""
    proc = _run(_ALLOC.format(setup=setup, op=op), cwd)
    for line in proc.stdout.splitlines():
        if line.startswith("ALLOC "):
            return int(line.split()[1])
    raise ToolError(f"benchmark script failed:\n{proc.stdout}{proc.stderr}")


# A heap's outcome is not monotonic in its size (where the large blocks land
# varies, and a lucky size may pass between failing ones): a size counts only
# when the ABOVE sizes above it, STEP apart, work too.
STEP = 256
ABOVE = 4


def smallest(ok, low, high):
    """The smallest size, to STEP, from which ok(size) holds at it and at the
    ABOVE sizes above it; ok(low) and ok(high) are not asked (the caller
    knows low fails and high works)."""
    while True:
        while high - low > STEP:
            mid = (low + high) // 2 // STEP * STEP
            if ok(mid):
                high = mid
            else:
                low = mid
        failed = next((h for h in range(high + STEP, high + (ABOVE + 1) * STEP, STEP)
                       if not ok(h)), None)
        if failed is None:
            return high
        low, high = failed, max(high, failed + 8 * STEP)
        while not ok(high):
            low, high = high, high + 8 * STEP


def smallest_heap(op, setup="", cwd=None, low=2048, high=1 << 20):
    """The smallest -X heapsize (bytes, to 256 B) from which set-up + op
    completes, at it and at the ABOVE sizes above it."""
    script = setup + "\n" + op + "\nprint('DONE')\n"

    def ok(heapsize):
        return "DONE" in _run(script, cwd, heapsize=heapsize).stdout

    if not ok(high):
        raise ToolError("benchmark script fails even with a 1 MB heap")
    return smallest(ok, low, high)


def workdir():
    return tempfile.TemporaryDirectory(prefix="onboard-bench-")


def mpy_size(module, missing_ok=False):
    """Size in bytes of build/onboard/<module>.mpy (0 if missing and missing_ok)."""
    path = BUILD / "onboard" / (module.replace(".", "/") + ".mpy")
    if not path.exists():
        if missing_ok:
            return 0
        raise ToolError(f"{path} missing: run `make build`")
    return path.stat().st_size
