"""Free loopback ports for servers that are started after the port is chosen
(a booting device, Mosquitto, QEMU's forwards, aiocoap).

A port found by binding 0 and letting go lies in the kernel's ephemeral range,
which the kernel also hands to every client socket (another test's connect or
sendto): between the choice and the server's bind it may be taken, and the
server fails to start (EADDRINUSE). Ports are therefore picked at random
just below that range, where the kernel gives nothing out by itself, and
bind-checked."""

import random
import socket
from pathlib import Path

_SPAN = 8192  # how far below the ephemeral range ports are picked
_TRIES = 200


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


def free_port(kind=socket.SOCK_STREAM, pair=False):
    """A loopback port free now, below the ephemeral range (pair: the port
    below it free too, for a server that listens at both)."""
    low = ephemeral_low()
    for _ in range(_TRIES):
        port = random.randrange(max(1025, low - _SPAN), low)
        if _bindable(port, kind) and (not pair or _bindable(port - 1, kind)):
            return port
    while True:  # (all taken: any free one, as binding 0 finds it)
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair or _bindable(port - 1, kind):
            return port
