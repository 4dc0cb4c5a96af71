"""Files onto a board's filesystem through mpremote's `exec` and `run`, as
`onboard deploy` and `onboard test-device` copy them.

mpremote's own `fs cp` sends each file as repr() of 256-byte pieces, one
exchange with the board per piece, plus several exchanges per file to stat
and hash it: a .mpy file (many \\x escapes) crosses the line at about 2.3
times its size. Here a file goes base64-encoded (4/3 of its size) in pieces
of up to CHUNK bytes, one exchange (a script mpremote runs) each, and only
the files the board lacks or holds otherwise are sent: one exchange first
lists the hashes of the files the board already has. On the emulated ESP32
the whole library takes about a third of the time mpremote's recursive
copy takes."""

import binascii
import hashlib
import subprocess
from pathlib import Path

from .build import PART

CHUNK = 3072  # file bytes per exchange: 4 KB of base64 the board compiles and decodes

# run on the board: "file PATH SHA256" for each of PATHS it holds
_LISTING = """import hashlib, binascii
for p in {paths!r}:
    try:
        with open(p, "rb") as f:
            h = hashlib.sha256()
            while True:
                b = f.read(1024)
                if not b:
                    break
                h.update(b)
        print("file", p, binascii.hexlify(h.digest()).decode())
    except OSError:
        pass
"""

# run on the board once before the files: the folders they go in (those there
# already are left as they are), and W, which writes one piece of a file
# (mode "wb" for its first, "ab" for the next) and names the file once its
# last piece is on the flash (n: the file's size; -1 for the pieces before)
_WRITER = """import os, binascii
for d in {folders!r}:
    try:
        os.mkdir(d)
    except OSError:
        pass
def W(p, b, m, n):
    with open(p, m) as f:
        f.write(binascii.a2b_base64(b))
    if n >= 0:
        print("wrote", p, n)
"""


def tree(folder):
    """{path on the board: host file} of the files in folder, named from its
    parent: folder onboard/ holds onboard/store.mpy, ... A module another
    build is compiling meanwhile (its .part file, put in place in one step
    once whole) is not one of them: make test builds in one process while
    another copies build/ onto a board."""
    return {"/".join(f.relative_to(folder.parent).parts): f
            for f in sorted(folder.rglob("*")) if f.is_file() and not f.name.endswith(PART)}


def listing(base, paths):
    """{path: sha256 hex} of the paths the board (mpremote command line base)
    holds; None when the board cannot list them (a firmware without hashlib)."""
    run = subprocess.run(base + ["exec", _LISTING.format(paths=sorted(paths))],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if run.returncode:
        return None
    held = {}
    for line in run.stdout.splitlines():
        kind, _, rest = line.strip().partition(" ")
        path, _, digest = rest.rpartition(" ")
        if kind == "file" and path in paths:
            held[path] = digest
    return held


def stale(files, held):
    """The board paths of files ({board path: host path}) that the board,
    holding held ({path: sha256 hex}, None: unknown), lacks or holds otherwise."""
    return [p for p, src in files.items() if held is None or held.get(p) != hashlib.sha256(
        src.read_bytes()).hexdigest()]


def write(files, folder):
    """mpremote commands (a list of arguments, each command ending in "+")
    that write files ({board path: host path}, paths relative to the board's
    current folder, "/" after mpremote's soft reset) onto the board. Each
    piece goes in a script of its own in folder (one only this user reads:
    tempfile's), which mpremote runs: a config's secrets and a device's key
    stay off the command line, which any process on the host may read."""
    folders = sorted({"/".join(p.split("/")[:i]) for p in files
                      for i in range(1, p.count("/") + 1)})
    cmd = ["exec", _WRITER.format(folders=folders), "+"]
    n = 0
    for path, src in files.items():
        data = src.read_bytes()
        for at in range(0, max(len(data), 1), CHUNK):
            piece = binascii.b2a_base64(data[at:at + CHUNK], newline=False)
            last = at + CHUNK >= len(data)
            script = Path(folder) / f"piece{n}.py"
            n += 1
            script.write_text(f"W({path!r}, {piece!r}, {'wb' if at == 0 else 'ab'!r}, "
                              f"{len(data) if last else -1})\n")
            cmd += ["run", str(script), "+"]
    return cmd
