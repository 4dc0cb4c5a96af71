"""Figures of setup mode: a reliability run of hostile portal requests and
malformed DNS packets, board_info throughput and latency, .mpy sizes."""

import json
import os
import random
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from onboard_cli.paths import BUILD, micropython, stop_process
from onboard_cli.ports import free_port

from .measure import mpy_size

HOSTILE_REQUESTS = 20000
MALFORMED_DNS = 20000


class Server:
    def __init__(self):
        self.port, self.dns_port = free_port(), free_port(socket.SOCK_DGRAM)
        env = dict(os.environ, MICROPYPATH=f".frozen:{BUILD}")
        self.proc = subprocess.Popen(
            [micropython(), str(Path(__file__).parent / "mpy" / "setup_mode.py"),
             str(self.port), str(self.dns_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env, bufsize=1)
        assert self.proc.stdout.readline().strip() == "READY"

    def ask(self, what):
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return None
            if line.startswith(what.upper() + " "):
                return line.split(" ", 1)[1].strip()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)


def hostile(rng):
    """One generated hostile request (bytes) and whether to close early."""
    pick = rng.randrange(12)
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if pick == 0:
        return junk
    if pick == 1:
        return b"GET /" + b"A" * rng.randrange(2000, 5000) + b" HTTP/1.1\r\n\r\n"
    if pick == 2:
        return b"GET / HTTP/1.1\r\nX: " + b"b" * rng.randrange(2100, 9000) + b"\r\n\r\n"
    if pick == 3:
        return b"POST /config HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % rng.randrange(1025, 10**7)
    if pick == 4:
        return b"GET /config?ssid=" + junk.replace(b" ", b"") + b" HTTP/1.1\r\n\r\n"
    if pick == 5:
        return b"%s / HTTP/1.1\r\n\r\n" % rng.choice([b"PUT", b"DELETE", b"BREW", b"", b"G\x00T"])
    if pick == 6:
        pairs = b"&".join(b"%d=%%%02x%%" % (i, rng.randrange(256))
                          for i in range(rng.randrange(1, 50)))
        return b"GET /config?" + pairs + b" HTTP/1.1\r\n\r\n"
    if pick == 7:
        body = b"{" * rng.randrange(1, 600)
        return (b"POST /config HTTP/1.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)) + body
    if pick == 8:
        return b"GET /config?ssid=" + b"%C3%28" * rng.randrange(1, 40) + b" HTTP/1.1\r\n\r\n"
    if pick == 9:
        return b"GET /wifi_scan.json HTTP/1.1\r\nHost: " + junk[:60].replace(b"\r\n", b"") \
            + b"\r\n\r\n"
    if pick == 10:
        return b"POST /config HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n" + junk
    return b"GET /board_info.json HTTP/1.1\r\nHost: 127.0.0.1\r\n" + junk[:40]  # cut short


def send(port, raw):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)  # a client that stops sending
            while s.recv(4096):
                pass
    except OSError:
        pass


def get(port, path):
    """The whole reply (bytes) to a GET of path."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
        data = b""
        while True:
            part = s.recv(4096)
            if not part:
                break
            data += part
    return data


def valid_request(port):
    return get(port, "/board_info.json").startswith(b"HTTP/1.1 200 ")


def malformed_dns(rng):
    pick = rng.randrange(5)
    if pick == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 512)))
    if pick == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 17)))
    if pick == 2:  # a response, not a query
        return struct.pack(">HHHHHH", rng.randrange(65536), 0x8180, 1, 1, 0, 0) + b"\x01a\x00"
    if pick == 3:  # labels running past the end
        return struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x3f" + b"a" * 20
    return struct.pack(">HHHHHH", 1, 0x0100, rng.randrange(2, 9), 0, 0, 0) + b"\x01a\x00\x00\x01"


def latency(port, clients, total=2000):
    times = []
    lock = threading.Lock()

    def one(_):
        t = time.perf_counter()
        ok = valid_request(port)
        with lock:
            times.append((time.perf_counter() - t) * 1000 if ok else None)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(total)))
    elapsed = time.perf_counter() - start
    good = sorted(t for t in times if t is not None)
    return len(good) / elapsed, good[int(len(good) * 0.99) - 1], len(times) - len(good)


def settled(server, timeout=60):
    """Once the server has handled all that reached it (its counters are the
    same twice, 0.2 s apart, and no connection is open: a hostile client that
    sent half a request is held until the portal's 5 s request timeout, and
    its buffers with it): its live heap is then what it keeps, not the
    buffers of a packet or a connection still being handled. Its counters."""
    stats, deadline = server.ask("stats"), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = server.ask("stats")
        if now == stats and json.loads(now)["active"] == 0:
            break
        stats = now
    return stats


def dns_burst(server, rng, n):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(n):
            s.sendto(malformed_dns(rng), ("127.0.0.1", server.dns_port))


def quiet_heap(server):
    """The server's live heap once it has handled all that reached it, read
    after two app requests: a finished connection's task (its request and
    reply) stays linked from asyncio's queue until the next one, so the
    reading holds the same small one each time, not whatever came last (a
    hostile request's head: up to the portal's 2 KB bound)."""
    valid_request(server.port)
    valid_request(server.port)
    settled(server)
    return int(server.ask("heap"))


def figures():
    rows = [("setup", "portal.mpy + dns.mpy", mpy_size("portal") + mpy_size("dns"), "B",
             "<= 7,000 B"),
            ("setup", "improv.mpy", mpy_size("improv"), "B", ""),
            ("setup", "wifi.mpy", mpy_size("wifi"), "B", "")]
    rng = random.Random(20261121)
    server = Server()
    try:
        # a person's browser: the form page, made by onboard.page, which lets go
        # of itself (what stays: the names it interned, never freed); after an
        # app's requests, which load what every request needs (asyncio's wait_for)
        fresh = quiet_heap(server)
        page = get(server.port, "/").startswith(b"HTTP/1.1 200 ")
        rows.append(("setup", "live heap held once a browser got the portal's page"
                     + ("" if page else " (NOT SERVED)"), quiet_heap(server) - fresh, "B",
                     "<= 256 B (its names; the page's code, 2 KB, let go)"))
        # warm up first: one-time allocations (interned names, grown tables) are no leak
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda raw: send(server.port, raw), (hostile(rng) for _ in range(2000))))
        dns_burst(server, rng, 2000)
        before = quiet_heap(server)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda raw: send(server.port, raw),
                          (hostile(rng) for _ in range(HOSTILE_REQUESTS))))
        dns_burst(server, rng, MALFORMED_DNS)
        alive = server.alive()
        served = valid_request(server.port) if alive else False
        stats = settled(server) if alive else "{}"
        after = quiet_heap(server) if alive else before
        rows += [
            ("setup", f"reliability: {HOSTILE_REQUESTS:,} hostile portal requests, "
             f"{MALFORMED_DNS:,} malformed DNS packets: crashes", 0 if alive else 1, "", "0"),
            ("setup", "  live heap after minus before (after a 2,000-request warm-up)",
             after - before, "B", "within 1,024 B"),
            ("setup", "  valid request served afterwards", "yes" if served else "no", "", "yes"),
            ("setup", "  device counters", stats, "", ""),
        ]
        for clients in (1, 4):
            rps, p99, failed = latency(server.port, clients)
            rows += [("setup", f"GET /board_info.json, {clients} client(s): requests/s",
                      round(rps), "", ""),
                     ("setup", f"  p99 latency ({failed} failed)", round(p99, 1), "ms", "")]
    finally:
        server.stop()
    return rows
