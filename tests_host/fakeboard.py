"""A fake mpremote whose board is a folder, for `onboard deploy` and `onboard
test-device` (tests_host/test_deploy.py, test_device_scripts.py): a chain
of `exec`s and `run`s runs there on the Unix port as one script (the
globals of one are the next one's, as in a board's raw REPL), and so does a
`run` alone; `reset` is noted in BOARD.resets, and each command line in
BOARD.argv. Only what was written there is on that board's import
path (plus the Unix board's network)."""

import os
import sys

from conftest import ROOT, micropython_binary

FAKE_MPREMOTE = r'''#!{python}
import os, subprocess, sys
args = sys.argv[3:]  # after "connect PORT"
with open({board!r} + ".argv", "a") as f:  # (each command line, for the tests to read)
    f.write(repr(sys.argv) + "\n")
env = dict(os.environ, MICROPYPATH=".frozen:" + {board!r} + ":" + {board_unix!r})
if args[0] == "run" and len(args) == 2:
    script = [args[1]]
else:
    code, command = [], []
    for word in args + ["+"]:
        if word != "+":
            command.append(word)
            continue
        if command[0] == "exec":
            code.append(command[1])
        elif command[0] == "run":
            with open(command[1]) as f:
                code.append(f.read())
        elif command[0] == "reset":  # (noted beside the board)
            code.append("with open(%r, 'a') as f:\n    f.write('reset\\n')" % (
                {board!r} + ".resets"))
        else:
            sys.exit("the fake mpremote: no " + command[0])
        command = []
    script = [{board!r} + ".chain.py"]  # (longer than one argument may be)
    with open(script[0], "w") as f:
        f.write("\n".join(code))
sys.exit(subprocess.run([{micropython!r}, *script], cwd={board!r}, env=env).returncode)
'''


def fake_mpremote(board):
    """The fake mpremote's command (mpremote()'s list) for the board folder."""
    fake = board.with_name(board.name + ".mpremote")
    fake.write_text(FAKE_MPREMOTE.format(python=sys.executable, board=str(board),
                                         board_unix=str(ROOT / "boards" / "unix"),
                                         micropython=micropython_binary()))
    fake.chmod(0o755)
    return [str(fake)]


def held(board):
    """{path: bytes} of the files on the fake board."""
    return {str(p.relative_to(board)): p.read_bytes() for p in board.rglob("*") if p.is_file()}


def written(board, run):
    """The paths of the fake board's files that run() wrote (each file's
    modification time set to 0 first)."""
    for p in board.rglob("*"):
        if p.is_file():
            os.utime(p, (0, 0))
    run()
    return sorted(str(p.relative_to(board)) for p in board.rglob("*")
                  if p.is_file() and p.stat().st_mtime_ns)
