# The device: load the board and the config, run onboard's state machine.
import board

from onboard.runtime import main


def start(rt):
    # the product's own code on the flash (its plgd resources, hooks), imported
    # where the runtime catches what it raises (704 and a reboot, as any error)
    try:
        from app import start
    except ImportError as e:
        # "no module named 'app'" or "can't import name start": no app.py, or
        # one without a start (short ends: each a name interned, not a string kept)
        if e.args[0][-6:] in (" 'app'", " start"):
            return
        raise
    start(rt)


main(board, None, start)
