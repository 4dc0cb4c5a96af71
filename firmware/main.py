# The device: load the board and the config, run onboard's state machine.
import board

from onboard.runtime import main

try:
    import app  # noqa: F401  the product's own code on the flash (its plgd resources, hooks)
except ImportError:
    pass

main(board)
