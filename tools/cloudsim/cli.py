"""`onboard cloudsim`: run the simulator until Ctrl-C or SIGTERM.

When ready it prints one JSON line on stdout (its addresses, the CA path and
the admin token), then logs to stderr."""

import signal
import sys
import threading

from .app import Cloudsim
from .broker import BrokerError


def main(args):
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sim = Cloudsim(args.state_dir, args.https_port, args.mqtt_port, args.mqtts_port).start()
    except BrokerError as e:
        from onboard_cli.paths import ToolError
        raise ToolError(str(e)) from None
    try:
        print(sim.ready_line(), flush=True)
        stop.wait()
    finally:
        sim.stop()
        print("cloudsim: stopped", file=sys.stderr, flush=True)
