"""`onboard bench` / `make bench`: one table of figures next to their goals."""

import importlib
import time

from onboard_cli.build import build

GROUPS = ["store", "network", "heap", "setup_mode", "device", "plgd", "esp32"]


def table(rows):
    head = ("group", "figure", "value", "goal")
    def show(v, unit):
        return (f"{v:,} {unit}" if isinstance(v, (int, float)) else f"{v} {unit}").strip()

    cells = [head] + [(g, f, show(v, u), goal) for g, f, v, u, goal in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(4)]
    out = []
    for n, c in enumerate(cells):
        out.append("  ".join(str(x).ljust(w) if i != 2 else str(x).rjust(w)
                             for i, (x, w) in enumerate(zip(c, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(args):
    build()
    rows = []
    started = time.monotonic()
    for group in args.only or GROUPS:
        rows += importlib.import_module(f"bench.{group}").figures()
    print(table(rows))
    print(f"({time.monotonic() - started:.1f} s)")
