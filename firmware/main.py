# The device: load the board and the config, run onboard's state machine.
import sys

import board

from onboard.runtime import main


def start(rt):
    # the product's own code on the flash (its plgd resources, hooks), imported
    # where the runtime catches what it raises (704 and a reboot, as any error)
    try:
        from app import start
    except ImportError as e:
        # no app.py ("no module named 'app'": a short end, a name interned, not a
        # string kept), or one without a start (app was imported: it is in
        # sys.modules, which keeps no module whose import failed, such as an app
        # whose own "from x import start" did)
        if e.args[0][-6:] == " 'app'" or "app" in sys.modules:
            return
        raise
    start(rt)


main(board, None, start)
