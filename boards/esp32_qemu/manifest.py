# Frozen firmware for this board: `make firmware BOARD=<this folder>`.
include("../../firmware/manifest.py")
module("board.py")
module("esp32_common.py", base_path="..")
