"""The HTTPS side of cloudsim: routing, JSON helpers and injected faults."""

import json
import re
import ssl
import threading
import time
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024


class HttpError(Exception):
    """Ends a request with this status and a JSON error body."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Request:
    def __init__(self, method, target, headers, body, client):
        parsed = urllib.parse.urlsplit(target)
        self.method = method
        self.path = parsed.path
        self.query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        self.headers = headers
        self.body = body
        self.client = client

    def json(self):
        """The body as a JSON object, or 400."""
        try:
            doc = json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "body is not JSON") from None
        if not isinstance(doc, dict):
            raise HttpError(400, "body must be a JSON object")
        return doc

    def fields(self):
        """Form-encoded or JSON body as a dict of strings, or 400."""
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            return {k: v for k, v in self.json().items()}
        try:
            return dict(urllib.parse.parse_qsl(self.body.decode(), strict_parsing=False))
        except UnicodeDecodeError:
            raise HttpError(400, "body is not form-encoded text") from None

    def bearer(self):
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else None


def need(doc, *names, kind=str):
    """The named fields of a request body, or 400 naming the first missing one."""
    out = []
    for name in names:
        value = doc.get(name)
        if value is None or value == "" or not isinstance(value, kind) \
                or isinstance(value, bool):
            raise HttpError(400, f"{name}: missing or not a {kind.__name__}")
        out.append(value)
    return out


class Faults:
    """Faults injected by tests through /_sim/faults, matched by path (and method)."""

    KINDS = ("latency", "status", "retry_after", "truncate", "drop", "numbers", "shape")

    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    def add(self, spec):
        kind = spec.get("kind")
        if kind not in self.KINDS or not isinstance(spec.get("path"), str):
            raise HttpError(400, f"kind must be one of {', '.join(self.KINDS)}; path a string")
        fault = {"count": 1, **spec}
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self):
        with self._lock:
            self._faults.clear()

    def take(self, method, path):
        """The fault that applies to this request, if any (uses up one count)."""
        with self._lock:
            for f in self._faults:
                if f["path"] == path and f.get("method", method) == method:
                    if f["count"] > 0:
                        f["count"] -= 1
                    if f["count"] == 0:
                        self._faults.remove(f)
                    return f
        return None


def as_numbers(obj):
    """Hex token strings ("0x...") turned into JSON numbers, as some servers send them."""
    if isinstance(obj, dict):
        return {k: as_numbers(v) for k, v in obj.items()}
    if isinstance(obj, str) and obj.startswith("0x"):
        return int(obj, 16)
    return obj


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudsim"
    timeout = 30  # a client that stalls mid-request does not hold a thread forever

    def date_time_string(self, timestamp=None):
        # the simulated clock, which /_sim/clock can move forward
        return formatdate(self.server.app.now() if timestamp is None else timestamp, usegmt=True)

    def log_message(self, fmt, *args):
        self.server.app.log(f"{self.address_string()} {fmt % args}")

    def _handle(self):
        app = self.server.app
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return self._send(413 if length > 0 else 400, {"error": "bad Content-Length"})
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, self.path, self.headers, body, self.client_address[0])
        app.requests.append((time.monotonic(), req.method, req.path))
        fault = app.faults.take(req.method, req.path)
        if fault:
            kind = fault["kind"]
            if kind == "latency":
                time.sleep(float(fault.get("seconds", 5)))
                fault["finished"] = True  # tests can tell a stall that ended from one going on
            elif kind == "drop":
                self.close_connection = True
                return
            elif kind == "status":
                return self._send(int(fault.get("status", 500)), {"error": "injected fault"})
            elif kind == "retry_after":
                return self._send(429, {"error": "too many requests"},
                                  {"Retry-After": str(fault.get("seconds", 5))})
            elif kind == "shape":
                return self._send(int(fault.get("status", 200)),
                                  fault.get("body", ["not", "the", "expected", "shape"]))
        try:
            status, doc, headers = app.dispatch(req)
        except HttpError as e:
            status, doc, headers = e.status, {"error": e.message}, e.headers
        except Exception as e:  # a bug in cloudsim must still answer
            app.log(f"internal error: {type(e).__name__}: {e}")
            status, doc, headers = 500, {"error": "internal error"}, {}
        if fault and fault["kind"] == "numbers":
            doc = as_numbers(doc)
        self._send(status, doc, headers, truncate=bool(fault and fault["kind"] == "truncate"))

    def _send(self, status, doc, headers=None, truncate=False):
        payload = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Location" not in (headers or {}):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if truncate:
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
        else:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class Router:
    def __init__(self):
        self.routes = []

    def add(self, method, pattern, handler):
        self.routes.append((method, re.compile(pattern + r"\Z"), handler))

    def dispatch(self, req):
        allowed = False
        for method, pattern, handler in self.routes:
            m = pattern.match(req.path)
            if m:
                if method != req.method:
                    allowed = True
                    continue
                out = handler(req, **m.groupdict())
                if len(out) == 2:
                    out = (*out, {})
                return out
        raise HttpError(405 if allowed else 404, "method not allowed" if allowed else "not found")


class HTTPSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a fleet's devices all come at once

    def __init__(self, app, port, certfile, keyfile):
        super().__init__(("127.0.0.1", port), Handler)
        self.app = app
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certfile), str(keyfile))
        self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                      do_handshake_on_connect=False)

    def handle_error(self, request, client_address):
        pass  # a client that drops mid-handshake is not cloudsim's problem
