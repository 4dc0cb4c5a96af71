"""`onboard test-device --port P`: tests_device/ on a board through mpremote.

Copies build/onboard and the test helpers to the board, runs every
tests_device/test_*.py with `mpremote run`, and checks each ends with
"N passed, 0 failed"."""

import re
import subprocess

from .paths import BUILD, TESTS_DEVICE, ToolError, tool

HELPERS = ("tinytest.py", "ramblock.py")
# test_https.py reads test_params.json on the board when there is one


def main(args):
    mpremote = tool("mpremote")
    if not (BUILD / "onboard").is_dir():
        raise ToolError("build/onboard is missing: run `make build` first")
    base = [mpremote, "connect", args.port]
    copy = base + ["fs", "cp", "-r", str(BUILD / "onboard"), ":"]
    for helper in HELPERS:
        copy += ["+", "fs", "cp", str(TESTS_DEVICE / helper), ":" + helper]
    if subprocess.run(copy).returncode:
        raise ToolError(f"could not copy onboard to the board on {args.port}")
    failed = []
    for script in sorted(TESTS_DEVICE.glob("test_*.py")):
        proc = subprocess.run(base + ["run", str(script)], capture_output=True, text=True,
                              timeout=args.timeout)
        print(proc.stdout, end="")
        lines = proc.stdout.strip().splitlines()
        last = lines[-1] if lines else ""
        m = re.fullmatch(r"(\d+) passed, (\d+) failed", last.strip())
        if not m or m[2] != "0":
            failed.append(script.name)
    if failed:
        raise ToolError("failed on the board: " + ", ".join(failed))
    print("all device tests passed")
