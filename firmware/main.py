# The device: load the board and the config, run onboard's state machine.
import board

from onboard.runtime import main

try:  # the product's own code on the flash (its plgd resources, hooks): its start(rt)
    from app import start
except ImportError:  # (no app.py, or one without a start)
    start = None

main(board, None, start)
