"""`onboard`: the one host command. `onboard --help` lists what it does."""

import argparse
import sys

from .manifest import CLOUDS
from .paths import BUILD, ROOT, ToolError


def parser():
    p = argparse.ArgumentParser(prog="onboard", description="onboard host tools")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("build", help="compile lib/ to .mpy in build/ and print sizes")

    b = sub.add_parser("bench", help="benchmarks: figures next to their goals")
    b.add_argument("only", nargs="*", help="groups to run (default: all)")

    ro = sub.add_parser("romfs", help="a ROMFS image of onboard (.mpy) for a board's "
                        "ROMFS partition, in build/")
    ro.add_argument("--cloud", action="append", choices=CLOUDS + ("clients",),
                    help="only this cloud's components (repeatable; default: every cloud; "
                         "clients: the blocking http and mqtt)")
    ro.add_argument("--board", help="add this board's modules (a folder of boards/)")
    ro.add_argument("--output", default=str(BUILD / "onboard.romfs"))

    c = sub.add_parser("cloudsim", help="run the local stand-in for the five clouds")
    c.add_argument("--state-dir", help="keep CA and broker files here (default: a temp dir)")
    c.add_argument("--https-port", type=int, default=0)
    c.add_argument("--mqtt-port", type=int, default=0)
    c.add_argument("--mqtts-port", type=int, default=0)

    d = sub.add_parser("device", help="simulated devices").add_subparsers(dest="action",
                                                                          required=True)
    r = d.add_parser("run", help="run one simulated device in the foreground")
    r.add_argument("--flash", required=True, help="folder used as the device's flash")
    r.add_argument("--config", required=True, help="device config (firmware/config.example.json)")
    r.add_argument("--radio", required=True, help="radio file: the networks in the air")
    r.add_argument("--portal-port", type=int, default=0)
    r.add_argument("--serial", help="link a pty here: the device's UART (Improv)")
    r.add_argument("--heapsize", help="MicroPython heap size, e.g. 64K")
    r.add_argument("--mpy", action="store_true", help="load build/'s .mpy files, not lib/")
    r.add_argument("--romfs", metavar="IMAGE",
                   help="load the library from this ROMFS image (make romfs) mounted at /rom")

    pc = sub.add_parser("portal", help="talk to a device in setup mode").add_subparsers(
        dest="action", required=True)
    c2 = pc.add_parser("configure", help="send Wi-Fi and token as a phone app does")
    c2.add_argument("--url", required=True, help="the portal, e.g. http://192.168.4.1/")
    c2.add_argument("--ssid", required=True)
    c2.add_argument("--password", default="")
    c2.add_argument("--token", help="the cloud token (Blynk auth token, ...)")
    c2.add_argument("--field", action="append", help="more fields: name=value")

    sm = sub.add_parser("sim", help="the whole life of a simulated device (make sim)")
    sm.add_argument("--profile", choices=("spokezone", "blynk", "allthingstalk", "plgd"),
                    help="default: spokezone (it has a renewal to show); blynk with "
                         "--interactive (a 32-character token a person can type)")
    sm.add_argument("--interactive", action="store_true",
                    help="wait in setup mode for a person with a browser")
    sm.add_argument("--heapsize", help="the device's MicroPython heap, e.g. 64K")
    sm.add_argument("--mpy", action="store_true", help="the device loads build/'s .mpy files")
    sm.add_argument("--romfs", metavar="IMAGE",
                    help="the device loads the library from this ROMFS image (make romfs)")
    sm.add_argument("--report-heap", action="store_true",
                    help="show the device's live heap at each state")
    sm.add_argument("--serial", metavar="PATH",
                    help="link the device's UART here, as a board's USB serial: it speaks "
                         "Improv there (onboard improv --port PATH)")

    dp = sub.add_parser("deploy", help="onboard onto a board running MicroPython (mpremote)")
    dp.add_argument("--port", required=True, help="the board's serial port")
    dp.add_argument("--board", default="esp32_generic", help="a folder of boards/")
    dp.add_argument("--config", default=str(ROOT / "firmware" / "config.example.json"))
    dp.add_argument("--ca", help="the CA file the device trusts (copied as /ca.pem)")
    dp.add_argument("--cert", help="the device's own certificate, PEM or DER (copied as "
                    "/device.pem: the config's cert names it)")
    dp.add_argument("--key", help="its private key (copied as /device.key: the config's key)")
    dp.add_argument("--cloud", action="append", choices=CLOUDS + ("clients",),
                    help="only this cloud's components (manifests/; repeatable; "
                         "default: every cloud; clients: the blocking http and mqtt)")
    dp.add_argument("--romfs", action="store_true",
                    help="the library and board modules into the board's ROMFS partition "
                         "(make romfs) instead of the filesystem")

    fl = sub.add_parser("fleet", help="N simulated devices provisioned against cloudsim")
    fl.add_argument("--devices", type=int, default=10)
    fl.add_argument("--timeout", type=float, default=120, help="seconds per device step")
    fl.add_argument("--fault", action="append", metavar="PATH:KIND[:COUNT]",
                    help="a cloud fault for the storm (repeatable): KIND an HTTP status "
                         "(503), 429=S (Retry-After S s), latency=S, drop, truncate or shape")

    i = sub.add_parser("improv", help="give a device its Wi-Fi over serial (Improv)")
    i.add_argument("--port", required=True,
                   help="serial port, a simulated device's pty, or socket://HOST:PORT (the "
                        "repl of onboard esp32 run)")
    i.add_argument("--ssid", help="network to join (without: only show the device)")
    i.add_argument("--password", default="")
    i.add_argument("--timeout", type=float, default=10)

    from .clouds import add_parsers
    add_parsers(sub)
    from .esp32 import add_parsers as add_esp32_parsers
    add_esp32_parsers(sub)

    from .mutate import add_parser as add_mutate
    add_mutate(sub)

    t = sub.add_parser("test-device", help="run tests_device/ on a board with mpremote")
    t.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    t.add_argument("--timeout", type=float, default=120, help="seconds per script")
    t.add_argument("--host", help="this host's address the board reaches for the HTTPS test "
                   "(default: the address on the default route)")
    t.add_argument("--wifi-ssid", help="network the board joins for the HTTPS test")
    t.add_argument("--https-ports", help="P1,P2: the HTTPS test's servers listen on loopback "
                   "at these ports (a board that reaches this host through forwards)")
    t.add_argument("--wifi-password", default="")
    return p


# options whose value is a secret: random text, which may start with "-"
# (one Blynk token in 64 does); argparse would take such a value for an option
SECRET_OPTIONS = ("--token", "--api-key", "--access-token", "--refresh-token", "--password",
                  "--wifi-password")


def secret_values(argv):
    """argv with each secret option joined to the word after it (--token=-Ab...),
    so that word is its value whatever it starts with."""
    out = []
    words = iter(argv)
    for word in words:
        value = next(words, None) if word in SECRET_OPTIONS else None
        out.append(word if value is None else f"{word}={value}")
    return out


def main(argv=None):
    args = parser().parse_args(secret_values(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "build":
            from .build import main as run
        elif args.command == "bench":
            from bench.runner import main as run
        elif args.command == "cloudsim":
            from cloudsim.cli import main as run
        elif args.command == "portal":
            from .portal import main as run
        elif args.command == "romfs":
            from .romfs import main as run
        elif args.command == "deploy":
            from .deploy import main as run
        elif args.command == "fleet":
            from .fleet import main as run
        elif args.command == "sim":
            from .sim import main as run
        elif args.command == "improv":
            from .improv import main as run
        elif args.command in ("imp", "blynk", "spokezone", "plgd", "att"):
            from .clouds import COMMANDS
            if args.command == "att" and not args.refresh_token and not (
                    args.username and args.password and args.code):
                raise ToolError("give --username, --password and --code, or --refresh-token")
            run = COMMANDS[args.command]
        elif args.command == "device":
            from .device import main as run
        elif args.command == "esp32":
            from .esp32 import main as run
        elif args.command == "mutate":
            from .mutate import main as run
        else:
            from .device_tests import main as run
        code = run(args)
        if isinstance(code, int):
            return code
    except ToolError as e:
        print(f"onboard {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
