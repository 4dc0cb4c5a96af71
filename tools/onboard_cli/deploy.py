"""`onboard deploy --port P`: onboard onto a board running MicroPython.

Compiles lib/ to .mpy, copies build/onboard, the board's board.py, the
firmware's boot.py and main.py and the config (as /config.json) with
mpremote, then resets the board. `make deploy` runs this."""

import subprocess

from .build import build
from .paths import BUILD, ROOT, ToolError, tool


def commands(port, board, config, ca=None):
    """The mpremote command line for a deploy (a list of arguments)."""
    board_py = ROOT / "boards" / board / "board.py"
    if not board_py.is_file():
        raise ToolError(f"--board {board}: no boards/{board}/board.py")
    cmd = [tool("mpremote"), "connect", port, "fs", "cp", "-r", str(BUILD / "onboard"), ":",
           "+", "fs", "cp", str(board_py), ":board.py",
           *(["+", "fs", "cp", str(ROOT / "boards" / "esp32_common.py"), ":esp32_common.py"]
             if board.startswith("esp32") else []),
           "+", "fs", "cp", str(ROOT / "firmware" / "boot.py"), ":boot.py",
           "+", "fs", "cp", str(ROOT / "firmware" / "main.py"), ":main.py",
           "+", "fs", "cp", str(config), ":config.json"]
    if ca:
        cmd += ["+", "fs", "cp", str(ca), ":ca.pem"]
    return cmd + ["+", "reset"]


def main(args):
    cmd = commands(args.port, args.board, args.config, args.ca)
    build()
    if subprocess.run(cmd).returncode:
        raise ToolError(f"mpremote could not deploy to {args.port}")
    print(f"deployed to {args.port}; the board is restarting")
