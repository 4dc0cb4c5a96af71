"""Free loopback ports for servers that are started after the port is chosen
(a booting device, Mosquitto, QEMU's forwards, aiocoap).

A port found by binding 0 and letting go lies in the kernel's ephemeral range,
which the kernel also hands to every client socket (another test's connect or
sendto): between the choice and the server's bind it may be taken, and the
server fails to start (EADDRINUSE). Ports are therefore picked at random
just below that range, where the kernel gives nothing out by itself, and
bind-checked. Each port given is noted for a while in a folder every picker
on the machine shares, so that two pickers running at once (pytest's
workers) cannot both give it while neither server has bound it yet."""

import os
import random
import socket
import tempfile
import time
from pathlib import Path

_SPAN = 8192  # how far below the ephemeral range ports are picked
_TRIES = 200
HELD_S = 120  # how long a port given is not given again: a server's start, generously
NOTES = Path(tempfile.gettempdir()) / f"onboard-ports-{os.getuid()}"  # (one per user)


def ephemeral_low():
    """The lowest port the kernel hands out to sockets that bind none (a
    client's connect or sendto)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port, kind):
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _claim(port):
    """True when this picker may give port: no picker gave it within HELD_S
    (the note is made with O_EXCL, so of two at once only one gets it)."""
    note = NOTES / str(port)
    try:
        NOTES.mkdir(exist_ok=True)
    except OSError:
        return True  # no folder to share: the bind check alone, as before
    for _ in range(2):
        try:
            os.close(os.open(note, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                if time.time() - note.stat().st_mtime < HELD_S:
                    return False
                note.unlink()  # an old note: the port may be given again
            except FileNotFoundError:
                pass  # another picker took the old note away: try once more
    return False


def free_port(kind=socket.SOCK_STREAM, pair=False):
    """A loopback port free now and given by no other picker lately, below
    the ephemeral range (pair: the port below it free too, for a server that
    listens at both)."""
    low = ephemeral_low()
    start = max(1025, low - _SPAN)
    for _ in range(_TRIES if start < low else 0):  # (a range that starts low leaves no room)
        port = random.randrange(start, low)
        if _bindable(port, kind) and (not pair or _bindable(port - 1, kind)) and _claim(port):
            return port
    while True:  # (all taken: any free one, as binding 0 finds it)
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair or _bindable(port - 1, kind):
            return port
