# Captive DNS: blynk.setup (Edgent's name) and, in captive mode, every other
# A query is answered with the access point's address (TTL 60), so any name
# a phone looks up leads to the portal; out of captive mode other names get
# SERVFAIL, as Edgent's. Anything that is not a well-formed single-question
# query is dropped.
import socket
from micropython import const

_TTL = const(60)
_MAX_NAME = const(255)


_NAME = const(b"\x05blynk\x05setup\x00")


def answer(query, ip, captive):
    """The reply to a DNS query (bytes), or None to drop it."""
    if len(query) < 17 or query[2] & 0xF8 or query[4:6] != b"\x00\x01":
        return None  # a response, not a standard query, or not exactly one question
    i = 12
    while True:
        if i >= len(query) or i - 12 >= _MAX_NAME:
            return None  # runs off the packet, or longer than 255 bytes with its end
        n = query[i]
        if n == 0:
            break
        if n & 0xC0:
            return None  # no compression in a question
        i += n + 1
    end = i + 5
    if end > len(query):
        return None
    ok = captive or query[12 : i + 1].lower() == _NAME
    head = query[:2] + (b"\x81\x80" if ok else b"\x81\x82") + query[4:6]  # else SERVFAIL
    if not ok or query[i + 1 : i + 3] != b"\x00\x01":  # or not A: say so with no answer
        return head + bytes(6) + query[12:end]
    return (head + b"\x00\x01\x00\x00\x00\x00" + query[12:end]
            + b"\xc0\x0c\x00\x01\x00\x01" + _TTL.to_bytes(4, "big") + b"\x00\x04"
            + bytes(map(int, ip.split("."))))


class CaptiveDNS:
    def __init__(self, ip, port, captive=True):
        self.ip = ip
        self.port = port
        self.captive = captive
        self.answered = 0
        self.dropped = 0

    def run(self):
        """A coroutine answering queries until its task is cancelled (the
        socket is closed then) or its socket fails; never raises on what
        arrives. (A generator,
        as MicroPython's own streams wait for I/O.)"""
        from asyncio import core  # pyright: ignore  (asyncio internals)

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo("0.0.0.0", self.port)[0][-1])
            s.setblocking(False)
            while True:
                yield core._io_queue.queue_read(s)  # pyright: ignore  (asyncio internals)
                try:
                    query, addr = s.recvfrom(512)
                except OSError:
                    break  # the socket is broken: polling it again would only spin
                reply = answer(query, self.ip, self.captive)
                if reply is None:
                    self.dropped += 1
                    continue
                try:
                    s.sendto(reply, addr)
                    self.answered += 1
                except OSError:
                    pass
        finally:
            s.close()
