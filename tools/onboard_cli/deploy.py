"""`onboard deploy --port P`: onboard onto a board running MicroPython.

Compiles lib/ to .mpy, copies build/onboard (or, with --cloud, only the
components that cloud's product needs: manifests/), the board's board.py,
the firmware's boot.py and main.py and the config (as /config.json) with
mpremote, then resets the board. Whatever else the board's onboard/ holds
(another product's modules, one since deleted from lib/) is removed first.
`make deploy` runs this.

--romfs (`make deploy ROMFS=1`): the library and the board's modules go
into the board's ROMFS partition as one image (`onboard romfs`), where
their .mpy code runs in place from flash; boot.py, main.py and the config
still go to the filesystem, and an onboard/ or board.py left there by an
earlier deploy is removed (it would shadow the image: '' is before /rom on
sys.path). A firmware without a ROMFS partition is said in one line."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from . import boardfs, manifest
from .build import build
from .paths import BUILD, LIB, ROOT, ToolError, mpremote, run_micropython

DEPLOY = BUILD / "deploy"  # the .mpy files of --cloud's components, as copied

# run on the board before the files are copied (--romfs): what would shadow the image
_UNSHADOW = """import os
def rm(p):
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:
        for n in os.listdir(p):
            rm(p + '/' + n)
        os.rmdir(p)
    else:
        os.remove(p)
for p in ('/onboard', '/board.py', '/board.mpy', '/esp32_common.py', '/esp32_common.mpy'):
    rm(p)
"""

# run on the board before the files are copied (a filesystem deploy): the
# library's folder is left holding only what this deploy writes there, so a
# module another product had, or one since deleted from lib/, is not left
# behind (still importable, and taking flash); empty folders go too
_SWEEP = """import os
keep = set({keep!r})
def sweep(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        p = d + '/' + n
        if os.stat(p)[0] & 0x4000:
            sweep(p)
            try:
                os.rmdir(p)
            except OSError:
                pass
        elif p[1:] not in keep:
            os.remove(p)
sweep('/onboard')
"""

NO_PARTITION = ("the firmware on {port} has no ROMFS partition ({why}); flash a MicroPython "
                "1.25+ build whose partition table has one, or deploy without ROMFS=1")


# The board's own check of its config (onboard.boot.unusable, as it runs at
# boot), on the Unix port before anything is copied: a config the board would
# refuse at every boot (ERROR 700) is refused here, naming the field; so are
# AllThingsTalk assets the board would refuse at every session's start
# (onboard.clouds.allthingstalk_assets.unusable, 700 there too).
_CHECK = """import json
from onboard.boot import unusable
try:
    with open({path!r}) as f:
        config = json.load(f)
except ValueError:
    print("CONFIG is not JSON")
else:
    bad = unusable(config) if type(config) is dict else ("the config", "an object")
    if not bad and config.get("profile") == "allthingstalk":
        from onboard.clouds.allthingstalk_assets import unusable as assets_unusable
        bad = assets_unusable(config)
    print("CONFIG: %s must be %s" % bad if bad else "CONFIG ok")
"""


def check_config(path):
    """ToolError naming what of the config file at path a board cannot use."""
    if not path.is_file():
        raise ToolError(f"{path}: no such config file")
    out = run_micropython(_CHECK.format(path=str(path.resolve())), [LIB]).stdout
    verdict = next((line for line in out.splitlines() if line.startswith("CONFIG")), None)
    if verdict is None:
        raise ToolError(f"{path}: the config check did not run:\n{out}")
    if verdict != "CONFIG ok":
        raise ToolError(f"{path}{verdict[6:]} (the board would show ERROR 700)")


def board_files(board):
    """{path on the board: host file} of the board's own modules."""
    board_py = ROOT / "boards" / board / "board.py"
    if not board_py.is_file():
        raise ToolError(f"--board {board}: no boards/{board}/board.py")
    out = {"board.py": board_py}
    if board.startswith("esp32"):
        out["esp32_common.py"] = ROOT / "boards" / "esp32_common.py"
    return out


def library(clouds=()):
    """The folder whose onboard/ the deploy copies: build/ for every cloud,
    else build/deploy/ holding only the clouds' components."""
    if not clouds:
        return BUILD / "onboard"
    shutil.rmtree(DEPLOY, ignore_errors=True)
    for target in manifest.modules(*clouds) + ["onboard/_build.py"]:
        mpy = target[:-3] + ".mpy"
        (DEPLOY / mpy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BUILD / mpy, DEPLOY / mpy)
    return DEPLOY / "onboard"


def files(board, config, ca=None, clouds=(), romfs=False, cert=None, key=None):
    """{path on the board: host file} a deploy writes: the library (not with
    romfs: it is in the image) and the board's modules, the firmware's boot.py
    and main.py, the config as config.json; ca, cert, key: host files written
    as ca.pem, device.pem and device.key."""
    boards = board_files(board)  # (checked with romfs too: a typo'd board is said at once)
    out = {} if romfs else {**boardfs.tree(library(clouds)), **boards}
    out.update({"boot.py": ROOT / "firmware" / "boot.py", "main.py": ROOT / "firmware" / "main.py",
                "config.json": Path(config)})
    for src, dst in ((ca, "ca.pem"), (cert, "device.pem"), (key, "device.key")):
        if src:
            out[dst] = Path(src)
    return out


def commands(port, wanted, folder, held=None, romfs=False):
    """The mpremote command line (a list of arguments) that writes wanted
    ({path on the board: host file}: files()) the board lacks or holds
    otherwise (held: {path: sha256 hex} the board holds, None: write them
    all), its pieces kept in folder until it has run, then resets the board;
    with romfs, first removes what would shadow the image."""
    cmd = mpremote() + ["connect", port]
    if romfs:
        cmd += ["exec", _UNSHADOW, "+"]
    else:
        cmd += ["exec", _SWEEP.format(keep=sorted(p for p in wanted if p.startswith("onboard/"))),
                "+"]
    stale = {p: wanted[p] for p in boardfs.stale(wanted, held)}
    return cmd + boardfs.write(stale, folder) + ["reset"]


def romfs_command(port, image):
    return mpremote() + ["connect", port, "romfs", "deploy", str(image)]


def no_partition(output):
    """mpremote's reason when the board has no ROMFS partition, else None."""
    for reason in ("ROMFS is not enabled on this device", "partition not found on device",
                   "No ROMFS partitions available"):
        if reason in output:
            return next(line.strip() for line in output.splitlines() if reason in line)
    return None


def deploy_image(port, board, clouds):
    from .romfs import IMAGE, make_image

    size = make_image(IMAGE, clouds, board)
    print(f"{IMAGE}: {size:,} bytes")
    run = subprocess.run(romfs_command(port, IMAGE), capture_output=True, text=True)
    output = run.stdout + run.stderr
    why = no_partition(output)
    if why:
        raise ToolError(NO_PARTITION.format(port=port, why=why))
    if run.returncode or "ROMFS image deployed" not in output:
        said = output.strip().splitlines()
        raise ToolError(f"mpremote could not write the ROMFS image to {port}: "
                        + (said[-1] if said else f"exit code {run.returncode}"))


def main(args):
    # every argument is checked before anything is written: --romfs's image
    # replaces the board's partition, and a deploy refused after it would
    # leave the board with the new library and the old files
    clouds = tuple(args.cloud or ())
    check_config(Path(args.config))
    if bool(args.cert) != bool(args.key):
        raise ToolError("--cert and --key: the device's certificate comes with its key")
    for given in (args.ca, args.cert, args.key):
        if given and not Path(given).is_file():
            raise ToolError(f"{given}: no such file")
    build()
    wanted = files(args.board, args.config, args.ca, clouds, args.romfs, args.cert, args.key)
    if args.romfs:
        deploy_image(args.port, args.board, clouds)
    held = boardfs.listing(mpremote() + ["connect", args.port], wanted)
    with tempfile.TemporaryDirectory() as folder:
        if subprocess.run(commands(args.port, wanted, folder, held, args.romfs)).returncode:
            raise ToolError(f"mpremote could not deploy to {args.port}")
    print(f"deployed to {args.port}{' (onboard in ROMFS)' if args.romfs else ''}; "
          "the board is restarting")
