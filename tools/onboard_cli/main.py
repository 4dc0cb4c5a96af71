"""`onboard`: the one host command. `onboard --help` lists what it does."""

import argparse
import sys

from .paths import ToolError


def parser():
    p = argparse.ArgumentParser(prog="onboard", description="onboard host tools")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("build", help="compile lib/ to .mpy in build/ and print sizes")

    b = sub.add_parser("bench", help="benchmarks: figures next to their goals")
    b.add_argument("only", nargs="*", help="groups to run (default: all)")

    c = sub.add_parser("cloudsim", help="run the local stand-in for the five clouds")
    c.add_argument("--state-dir", help="keep CA and broker files here (default: a temp dir)")
    c.add_argument("--https-port", type=int, default=0)
    c.add_argument("--mqtt-port", type=int, default=0)
    c.add_argument("--mqtts-port", type=int, default=0)

    t = sub.add_parser("test-device", help="run tests_device/ on a board with mpremote")
    t.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    t.add_argument("--timeout", type=float, default=120, help="seconds per script")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.command == "build":
            from .build import main as run
        elif args.command == "bench":
            from bench.runner import main as run
        elif args.command == "cloudsim":
            from cloudsim.cli import main as run
        else:
            from .device_tests import main as run
        run(args)
    except ToolError as e:
        print(f"onboard {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
