# Frozen firmware for this board: `make firmware BOARD=<this folder>`.
include("../../firmware/manifest.py")
module("board.py", opt=3)
module("esp32_common.py", base_path="..", opt=3)
