"""A fake mpremote whose board is a folder, for `onboard deploy` and `onboard
test-device` (tests_host/test_deploy.py, test_device_scripts.py): a chain
of `exec`s and `run`s runs there on the Unix port as one script (the
globals of one are the next one's, as in a board's raw REPL), and so does a
`run` alone; `reset` is noted in BOARD.resets, each command line in
BOARD.argv, and `romfs deploy IMAGE` copies the image as BOARD.romfs (its
ROMFS partition).
Only what was written there is on that board's import path (plus the Unix
board's network).

The board's / is the folder: an absolute path given to open() or to os's
file functions (os.stat, listdir, remove, rmdir, mkdir, rename, ...) is
taken under it (ROOTED: an os module of its own, ahead of the builtin one on
the import path), except where a script mounted a filesystem of its own
(os.mount). A chain of commands checks first that this os is the one
loaded, and runs nothing otherwise: the scripts a deploy sends remove
'/onboard' and '/board.py', which here would be the host's. (A `run`
alone gets this os, and the board's open(), once it imports os.)"""

import os
import sys

from conftest import ROOT, micropython_binary

FAKE_MPREMOTE = r'''#!{python}
import os, subprocess, sys
args = sys.argv[3:]  # after "connect PORT"
with open({board!r} + ".argv", "a") as f:  # (each command line, for the tests to read)
    f.write(repr(sys.argv) + "\n")
env = dict(os.environ, MICROPYPATH=".frozen:" + {rooted!r} + ":" + {board!r} + ":"
           + {board_unix!r})
if args[:2] == ["romfs", "deploy"]:  # (the partition: the image's bytes beside the board)
    with open(args[2], "rb") as f, open({board!r} + ".romfs", "wb") as g:
        g.write(f.read())
    print("ROMFS image deployed")  # (as mpremote says it)
    sys.exit(0)
if args[0] == "run" and len(args) == 2:
    script = [args[1]]
else:
    # (nothing runs unless the board's / is the folder)
    code, command = ["import os\nif getattr(os, 'BOARD', None) != %r:\n"
                     "    raise SystemExit('fakeboard: not its own os')" % {board!r}], []
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
            code.append("import io\nwith io.open(%r, 'a') as f:\n    f.write('reset\\n')" % (
                {board!r} + ".resets"))  # (io.open: the host's path, not the board's)
        else:
            sys.exit("the fake mpremote: no " + command[0])
        command = []
    script = [{board!r} + ".chain.py"]  # (longer than one argument may be)
    with open(script[0], "w") as f:
        f.write("\n".join(code))
sys.exit(subprocess.run([{micropython!r}, *script], cwd={board!r}, env=env).returncode)
'''

# the board's os (and open()): an absolute path is the board folder's, BOARD
ROOTED = r'''import sys
_path = sys.path
sys.path = []
try:
    from os import *  # (the builtin one: nothing on the import path)
    import os as _os
finally:
    sys.path = _path
import builtins
BOARD = {board!r}
_mounts = []  # (where a script mounted a filesystem of its own: its paths are its)
def _norm(p):
    parts = []
    for c in p.split("/"):
        if c == "..":
            if parts:
                parts.pop()
        elif c and c != ".":
            parts.append(c)
    return "/" + "/".join(parts)
def _at(p):
    if type(p) is not str or not p.startswith("/"):
        return p
    q = _norm(p)
    if any(q == m or q.startswith(m + "/") for m in _mounts):
        return q
    return BOARD + q if q != "/" else BOARD
def _one(f):
    return lambda *a: f(_at(a[0]), *a[1:]) if a else f()
for _n in ("stat", "lstat", "listdir", "ilistdir", "mkdir", "rmdir", "remove", "unlink",
           "chdir", "statvfs"):
    if hasattr(_os, _n):
        globals()[_n] = _one(getattr(_os, _n))
def rename(a, b):
    return _os.rename(_at(a), _at(b))
def getcwd():
    c = _os.getcwd()
    return "/" + c[len(BOARD):].lstrip("/") if c == BOARD or c.startswith(BOARD + "/") else c
def mount(fs, where, *a, **kw):
    _os.mount(fs, where, *a, **kw)
    _mounts.append(_norm(where))
def umount(where):
    _os.umount(where)
    if type(where) is str and _norm(where) in _mounts:
        _mounts.remove(_norm(where))
_open = builtins.open
builtins.open = lambda p, *a, **kw: _open(_at(p), *a, **kw)
'''


def fake_mpremote(board):
    """The fake mpremote's command (mpremote()'s list) for the board folder."""
    fake = board.with_name(board.name + ".mpremote")
    rooted = board.with_name(board.name + ".rooted")
    rooted.mkdir(exist_ok=True)
    (rooted / "os.py").write_text(ROOTED.format(board=str(board)))
    fake.write_text(FAKE_MPREMOTE.format(python=sys.executable, board=str(board),
                                         rooted=str(rooted),
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
