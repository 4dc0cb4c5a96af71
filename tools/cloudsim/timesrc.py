"""The time sources devices use in tests instead of public ones: an SNTP
server on UDP (RFC 4330 server side, stratum 2, cloudsim's clock) that can
be told to answer badly, and a plain-HTTP port whose every reply carries a
Date header from the same clock."""

import socket
import struct
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NTP_1900 = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01

# How the SNTP server can misbehave (POST /_sim/sntp {"kind": K, "count"?: N}):
SNTP_FAULTS = {
    "kiss": "stratum 0 (kiss-o'-death, code RATE)",
    "mode": "mode 3 (a client's request) instead of 4",
    "version": "version 1",
    "unsynchronised": "leap indicator 3 (clock not synchronised)",
    "zero": "transmit timestamp zero",
    "origin": "an originate timestamp that is not the request's transmit time",
    "short": "a reply of 47 bytes",
    "early": "the time 2000-01-01 (before any firmware's build)",
    "stratum16": "stratum 16 (unsynchronised, RFC 5905)",
    "silent": "no reply at all",
}


def ntp_timestamp(unix):
    """64-bit NTP timestamp bytes for Unix seconds (float)."""
    secs = int(unix) + NTP_1900
    frac = int((unix - int(unix)) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack(">II", secs & 0xFFFFFFFF, frac)


class SntpServer:
    """SNTP on 127.0.0.1:port (0 = a free port), answering from now(). As real
    servers differ, a well-formed reply may come from a server of another stratum
    (1: a reference clock's own), in broadcast mode (5, which RFC 4330 lets a
    client take), in version 3, or delay seconds after the request (a far server)."""

    def __init__(self, now, port=0, fault=None, stratum=2, mode=4, version=None, delay=0.0):
        self.now = now
        self.stratum, self.mode, self.version, self.delay = stratum, mode, version, delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._stopped = threading.Event()
        self.lock = threading.Lock()
        self.fault = None  # {"kind", "count"}; count -1 = until cleared
        self.requests = 0  # requests received, answered or not
        if fault:
            self.set_fault(fault)
        self._thread = None

    def set_fault(self, spec):
        kind, count = spec.get("kind"), spec.get("count", 1)
        if kind not in SNTP_FAULTS or not isinstance(count, int) or count == 0 or count < -1:
            raise ValueError(f"kind: one of {', '.join(SNTP_FAULTS)}; count: N >= 1 or -1")
        with self.lock:
            self.fault = {"kind": kind, "count": count}
        return dict(self.fault)

    def clear(self):
        with self.lock:
            self.fault = None

    def _take(self):
        with self.lock:
            f = self.fault
            if not f:
                return None
            if f["count"] > 0:
                f["count"] -= 1
                if f["count"] == 0:
                    self.fault = None
            return f["kind"]

    def reply(self, req):
        """The reply to one request (bytes), or None to stay silent."""
        if len(req) < 48 or req[0] & 7 != 3:
            return None  # not a client request
        with self.lock:
            self.requests += 1
        kind = self._take()
        if kind == "silent":
            return None
        version = self.version or (req[0] >> 3) & 7  # (a server answers in the request's)
        li, mode, stratum = 0, self.mode, self.stratum
        if kind == "kiss":
            stratum = 0
        elif kind == "stratum16":
            stratum = 16
        elif kind == "mode":
            mode = 3
        elif kind == "version":
            version = 1
        elif kind == "unsynchronised":
            li = 3
        t = 946684800.0 if kind == "early" else self.now()
        stamp = ntp_timestamp(t)
        origin = req[40:48]
        if kind == "origin":
            origin = bytes(b ^ 0xFF for b in origin)
        transmit = bytes(8) if kind == "zero" else stamp
        refid = b"RATE" if kind == "kiss" else socket.inet_aton("127.0.0.1")
        out = (bytes((li << 6 | version << 3 | mode, stratum, req[2], 0xEC))
               + struct.pack(">II", 0, 0) + refid + stamp + origin + stamp + transmit)
        return out[:47] if kind == "short" else out

    def _serve(self):
        while not self._stopped.is_set():
            try:
                req, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue  # look at the stop flag now and then
            except OSError:
                return
            out = self.reply(req)
            if out is not None and self.delay:
                self._stopped.wait(self.delay)  # (the way back: stamped, then on the network)
            if out is not None:
                try:
                    self.sock.sendto(out, addr)
                except OSError:
                    pass

    def start(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.sock.close()


class _DateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudsim-time"
    timeout = 10

    def date_time_string(self, timestamp=None):
        return formatdate(self.server.now() if timestamp is None else timestamp, usegmt=True)

    def log_message(self, fmt, *args):
        pass

    def _any(self):
        self.server.count()
        body = b"cloudsim: the time is in the Date header\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _any


class DateServer(ThreadingHTTPServer):
    """Plain HTTP on 127.0.0.1:port: 200 to anything, with Date from now()."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, now, port=0):
        super().__init__(("127.0.0.1", port), _DateHandler)
        self.now = now
        self.port = self.server_address[1]
        self.requests = 0
        self._lock = threading.Lock()

    def count(self):
        with self._lock:
            self.requests += 1

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()
