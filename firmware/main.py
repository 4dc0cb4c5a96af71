# The device: load the board and the config, run onboard's state machine.
import board

from onboard.runtime import main

main(board)
