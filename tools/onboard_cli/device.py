"""`onboard device run`: one simulated device (Unix MicroPython, boards/unix).

The device's flash is a folder; its radio is a JSON file (see
boards/unix/network.py). Each device event is printed as one JSON line on
stdout with "t", the seconds since start, and "dns", the UDP port of its
captive DNS (answering while it is in setup mode); the device's log goes
to stderr.
A device that reboots (exit code 3) is started again.
With --romfs IMAGE the library comes from a ROMFS image (`make romfs`)
mounted at /rom with vfs.VfsRom, its bytes outside the heap as a board's
flash is (boards/unix/rom.py, which lets go of its own code before the
device starts)."""

import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

from .paths import BOARD_UNIX, BUILD, LIB, ROOT, ToolError, micropython
from .ports import free_port

REBOOT = 3
ROM = "/rom"  # where --romfs mounts its image, as a board's firmware does
ROMFS_HEADER = b"\xd2\xcd\x31"


def device_mac(flash):
    # a stable, locally administered MAC per flash folder, so fleets differ
    digest = hashlib.sha256(str(Path(flash).resolve()).encode()).digest()
    return "02:" + ":".join("%02x" % b for b in digest[:5])


def environment(args, flash, portal_port, dns_port):
    env = dict(os.environ)
    env.update({
        "MICROPYPATH": micropypath(args, flash),
        "ONBOARD_FLASH": str(flash),
        "ONBOARD_CONFIG": str(Path(args.config).resolve()),
        "ONBOARD_RADIO": str(Path(args.radio).resolve()),
        "ONBOARD_PORTAL_PORT": str(portal_port),
        "ONBOARD_DNS_PORT": str(dns_port),
        "ONBOARD_MAC": device_mac(flash),
        "ONBOARD_BUTTON": str(flash.parent / "button"),
        "ONBOARD_LED": str(flash.parent / "led"),
    })
    return env


def micropypath(args, flash):
    """--mpy: the .mpy files of build/, as a device loads them, instead of
    lib/'s sources; --romfs: the library from the image at /rom (the board's
    modules from boards/unix, so an image built for another board runs here
    too, unless the image was built for this board: rom.py then puts /rom
    first); files on the flash import last, as on a board.

    The library and the board's modules are reached through two links in
    the flash folder, .lib and .board, named relative to it (the device
    runs there). MicroPython interns each module's file path for good (its
    __file__): through the links it is ".lib/onboard/store.mpy", about as
    long as a board's "onboard/store.mpy", whatever folder the project was
    cloned into. Absolute paths cost each module its clone's folder again
    (17 bytes in /work/main, more in a deeper clone), about 0.6 KB over a
    life, and made the heap figures depend on where the project lives."""
    board = BUILD / "board_unix" if args.mpy else BOARD_UNIX
    path = [_link(flash, ".board", board)]
    romfs = getattr(args, "romfs", None)
    if romfs or args.mpy:
        path.append(ROM)  # (rom.boot puts it first when it holds the board's network)
    if not romfs:
        path.insert(0, _link(flash, ".lib", BUILD if args.mpy else LIB))
    return ":".join([".frozen", *path, str(flash)])


def _link(flash, name, target):
    # flash/name -> target (made, or replaced when it names another folder)
    link = flash / name
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return name
        link.unlink()
    elif link.exists():
        raise ToolError(f"{link}: in the way of the link to {target} (remove it)")
    link.symlink_to(target, target_is_directory=True)
    return name


def rom_launch(image, main):
    """The -c program that mounts image at /rom (boards/unix/rom.py, on the
    path), lets go of that module and runs the script main as the port runs
    its main script. A board's firmware mounts its partition in C, so none
    of the mount's code may stay on the heap being measured: main's text is
    part of the program, not exec()'d from it, whose frames would land where
    the mount's were and keep their stale pointers (the GC scans the C
    stack conservatively), and with them the module."""
    main = Path(main)
    return ("import sys, rom\nrom.boot(%r)\ndel rom, sys.modules['rom']\nsys.path[0] = %r\n"
            % (str(image), str(main.parent))) + main.read_text()


def check_image(path):
    """The path of a ROMFS image, or ToolError naming --romfs."""
    image = Path(path).resolve()
    if not image.is_file():
        raise ToolError(f"--romfs {path}: no such file (make romfs builds build/onboard.romfs)")
    with open(image, "rb") as f:
        if f.read(3) != ROMFS_HEADER:
            raise ToolError(f"--romfs {path}: not a ROMFS image")
    return image


def open_serial(path):
    """The device's UART as a null-modem of two raw ptys: the device opens
    one pty's terminal end, a user (onboard improv, a terminal) opens the
    other's, linked at path; a thread relays between their controllers.
    Returns the device's terminal path."""
    ends = [os.openpty(), os.openpty()]
    for controller, terminal in ends:
        tty.setraw(controller)
        tty.setraw(terminal)
    link = Path(path)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.ttyname(ends[1][1]))
    threading.Thread(target=_relay, args=(ends[0][0], ends[1][0]), daemon=True).start()
    return os.ttyname(ends[0][1])


def _relay(a, b):
    # the terminal ends stay open here, so a side that closes never breaks the relay
    other = {a: b, b: a}
    while True:
        for fd in select.select([a, b], [], [])[0]:
            try:
                os.write(other[fd], os.read(fd, 4096))
            except OSError:
                pass


def main(args):
    flash = Path(args.flash).resolve()
    flash.mkdir(parents=True, exist_ok=True)
    for name in ("config", "radio"):
        if not Path(getattr(args, name)).is_file():
            raise ToolError(f"--{name} {getattr(args, name)}: no such file")
    portal_port = args.portal_port or free_port()
    dns_port = free_port(socket.SOCK_DGRAM)
    env = environment(args, flash, portal_port, dns_port)
    if args.serial:
        env["ONBOARD_SERIAL"] = open_serial(args.serial)
    cmd = [micropython()]
    if args.heapsize:
        cmd += ["-X", f"heapsize={args.heapsize}"]
    main_py = ROOT / "firmware" / "main.py"
    if getattr(args, "romfs", None):
        # boards/unix/rom.py mounts the image outside the heap, then main.py runs
        cmd += ["-c", rom_launch(check_image(args.romfs), main_py)]
    elif args.mpy:
        # as a device runs: the board's firmware (its network) from flash,
        # the library's .mpy from the filesystem
        from .romfs import unix_firmware

        cmd += ["-c", rom_launch(unix_firmware(), main_py)]
    else:
        cmd.append(str(main_py))
    start = time.monotonic()
    proc = None
    stopping = []  # a stop asked for: no device is started after it

    def stop(*_):
        stopping.append(True)
        if proc and proc.poll() is None:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    boots = 0
    while not stopping:
        boots += 1
        sys.stderr.write(f"@boot {boots}\n")
        sys.stderr.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=flash,
                                text=True, bufsize=1)
        if stopping:  # (asked while it was being started: the handler saw none)
            proc.terminate()
        names = {}  # the board's last qstr pool line: the names interned so far
        for line in proc.stdout:
            if line.startswith("qstr pool: "):  # ("n_pool=5, n_qstr=520, ...")
                names = dict(kv.split("=") for kv in line[11:].strip().split(", "))
                continue
            if line.startswith("@event "):
                try:
                    event = json.loads(line[7:])
                except ValueError:
                    sys.stderr.write(line)
                    continue
                if "heap" in event and names:
                    # names interned (qstrs, never freed) and the heap they take
                    event["names"] = int(names["n_qstr"])
                    event["names_bytes"] = int(names["n_total_bytes"])
                names = {}
                # dns: the captive DNS's UDP port, for a client to query
                print(json.dumps({"t": round(time.monotonic() - start, 3), "dns": dns_port,
                                  **event}), flush=True)
            else:
                sys.stderr.write(line)
        code = proc.wait()
        if code != REBOOT:
            return code
    return 0
