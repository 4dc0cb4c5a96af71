"""`onboard test-device --port P`: tests_device/ on a board through mpremote.

Starts the local HTTPS servers tests_device/test_https.py checks against
(their own throw-away CA, on this host's address), brings the board's
onboard/ up to build/onboard (copying only the files it lacks or holds
otherwise), copies the test helpers (and the ESP32 boards' esp32_common.py,
whose access point test_access_point.py starts) and what the scripts need
(test_params.json, the CA files) to the board, runs every
tests_device/test_*.py with `mpremote run`, and checks each ends with
"N passed, 0 failed" with N > 0, and that the HTTPS server saw the board's
verified request."""

import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path

from . import boardfs
from .paths import BUILD, ROOT, TESTS_DEVICE, ToolError, mpremote

HELPERS = ("tinytest.py", "ramblock.py")
# test_access_point.py runs the ESP32 boards' own access point code on an
# ESP32 (a deploy puts the same file there, so it is copied only to a board
# without it)
BOARD_HELPERS = (ROOT / "boards" / "esp32_common.py",)
PATH = "/onboard-test-device"
# answered with the subject's common name of the certificate the client
# presented (a device's own certificate, as plgd hub asks for one)
WHOAMI = PATH + "/whoami"
# answered with how many connections to the other server its clients still
# hold open after the handshake failed, once that is 0 or after 10 s
LINGERING = PATH + "/lingering"
_SUMMARY = re.compile(r"(\d+) passed, (\d+) failed")


def copy_commands(base, extra, folder):
    """mpremote commands that bring the board's onboard/ up to build/onboard,
    and write the helpers and extra (host files) beside it: only the files
    the board lacks or holds otherwise, from one listing of their hashes on
    the board (all of them when it cannot list them). Files the board holds
    beyond them are left. folder: where their pieces wait (boardfs.write)."""
    files = boardfs.tree(BUILD / "onboard")
    files.update({f.name: f for f in [TESTS_DEVICE / h for h in HELPERS]
                  + list(BOARD_HELPERS) + list(extra)})
    stale = boardfs.stale(files, boardfs.listing(base, files))
    copied = sum(p.startswith("onboard/") for p in stale)
    print(f"onboard/: {copied} file(s) to copy, the others are on the board already")
    return boardfs.write({p: files[p] for p in stale}, folder)[:-1]


def verdict(output):
    """None when a script's output ends "N passed, 0 failed" with N > 0,
    else why not."""
    lines = output.strip().splitlines()
    m = _SUMMARY.fullmatch(lines[-1].strip() if lines else "")
    if not m:
        return "no summary line"
    if m[2] != "0":
        return f"{m[2]} failed"
    if m[1] == "0":
        return "no test ran"
    return None


class _Handler(BaseHTTPRequestHandler):
    def setup(self):
        # the TLS handshake here, in the request's thread, so a client that
        # stalls or refuses the certificate never holds up the next one
        self.request.settimeout(15)
        server = self.server
        server.count("lingering", 1)  # (before the client can see a certificate)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            # a client that broke the handshake off should close its end at once
            with socket.socket(fileno=os.dup(self.request.fileno())) as plain:
                plain.settimeout(15)  # (the file is non-blocking: timeouts poll)
                try:
                    while plain.recv(4096):
                        pass
                except OSError:
                    pass
            raise
        finally:
            server.count("lingering", -1)
        super().setup()

    def do_GET(self):  # noqa: N802  (http.server's name)
        if self.path == LINGERING:
            other = self.server.other
            with other.changed:
                other.changed.wait_for(lambda: not other.lingering, 10)
                n = other.lingering
            self.server.lingered.append(n)
            return self._reply(200, b"%d" % n)
        if self.path == WHOAMI:
            cert = self.request.getpeercert()  # (verified against the CA that issued it)
            name = dict(n[0] for n in cert["subject"])["commonName"] if cert else None
            self.server.presented.append(name)
            return self._reply(200 if name else 403, (name or "no certificate").encode())
        self.server.requests.append(self.path)
        ok = self.path == PATH
        self._reply(200 if ok else 404, self.server.body if ok else b"not found")

    def _reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a handshake the client broke off (a certificate it refused)
        self.count("refused", 1)

    def count(self, name, n):
        with self.changed:
            setattr(self, name, getattr(self, name) + n)
            self.changed.notify_all()


class HTTPSFixture:
    """Two local HTTPS servers for tests_device/test_https.py, and the files
    the script reads (test_params.json, test_ca.pem, test_stranger_ca.pem,
    and a device certificate with its key in each of cloudsim.pki's
    DEVICE_FORMS) written to folder; .files lists them, .requests is what
    the right server answered (its request log), .presented the names of
    the client certificates WHOAMI's requests presented to it (None: none),
    .device the name the device certificate was issued for, .forms those
    forms. A context manager: stops on exit."""

    def __init__(self, folder, host="127.0.0.1", wifi=None, ports=(0, 0), bind=None):
        # ports, bind: where the servers listen when the board reaches them by
        # a forward (the emulated ESP32 dials host:port, relayed to bind:port)
        from cloudsim.pki import CA, DEVICE_FORMS, device_form

        folder = Path(folder)
        keys = folder / "server"  # never copied to the board
        keys.mkdir(parents=True, exist_ok=True)
        ca, stranger = CA("onboard test-device CA"), CA("onboard test-device stranger CA")
        try:
            ip_address(host)
            names, ips = (), (host,)
        except ValueError:
            names, ips = (host,), ()
        self.body = secrets.token_hex(8).encode()
        bind = bind or host
        self.servers = [self._start((bind, ports[0]),
                                    *ca.write_server(keys, "right", names=names, ips=ips),
                                    asks=ca),
                        self._start((bind, ports[1]),
                                    *ca.write_server(keys, "other", names=("other.invalid",),
                                                     ips=()))]
        self.requests = self.servers[0].requests
        self.presented = self.servers[0].presented
        self.servers[0].other = self.servers[1]
        self.lingered = self.servers[0].lingered
        base = "https://%s:%%d%s" % (host, PATH)
        params = {"url": base % self.servers[0].server_address[1],
                  "other_name_url": base % self.servers[1].server_address[1],
                  "ca": "test_ca.pem", "stranger_ca": "test_stranger_ca.pem",
                  "body": self.body.decode(), "now": int(time.time())}
        if wifi:
            params["wifi"] = wifi
        (folder / "test_ca.pem").write_bytes(ca.pem())
        (folder / "test_stranger_ca.pem").write_bytes(stranger.pem())
        names = ["test_params.json", "test_ca.pem", "test_stranger_ca.pem"]
        # the device's own certificate (as an OCF identity names a device)
        self.device = "uuid:" + str(uuid.uuid4())
        issued = ca.issue_device(self.device[5:])
        params["lingering_url"] = base.replace(PATH, LINGERING) % self.servers[0].server_address[1]
        params["identity"] = {"url": base.replace(PATH, WHOAMI) % self.servers[0].server_address[1],
                              "name": self.device, "files": []}
        self.forms = DEVICE_FORMS
        for i, form in enumerate(DEVICE_FORMS):
            pair = [f"test_id{i}.crt", f"test_id{i}.key"]
            for name, data in zip(pair, device_form(*issued, form)):
                (folder / name).write_bytes(data)
            params["identity"]["files"].append(pair)
            names += pair
        (folder / "test_params.json").write_text(json.dumps(params))
        self.files = [folder / n for n in names]

    def _start(self, address, cert, key, asks=None):
        # asks: the CA whose certificates a client may present (WHOAMI's
        # requests do), verified; a client presenting none is served too
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if asks:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cadata=asks.pem().decode())
        server = _Server(address, _Handler)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        server.requests, server.refused, server.body = [], 0, self.body
        server.presented, server.lingering, server.lingered = [], 0, []
        server.changed = threading.Condition()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def unseen(self):
        """What the servers' own logs lack of test_https.py's run (None: nothing)."""
        if PATH not in self.requests:
            return "the HTTPS server saw no request"
        if self.presented != [self.device] * len(self.forms):
            return "the HTTPS server was not shown the device's certificate in each form"
        if self.lingered != [0]:
            return "the HTTPS server did not see a refused connection closed"
        return None

    def wait_refused(self, counts, timeout=10):
        """True once each server has seen at least counts[i] broken-off
        handshakes, False if that has not happened within timeout."""
        for server, n in zip(self.servers, counts):
            with server.changed:
                if not server.changed.wait_for(lambda s=server, n=n: s.refused >= n, timeout):
                    return False
        return True

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def lan_address():
    """This host's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
        except OSError:
            raise ToolError("no network route: give --host, an address the board "
                            "can reach") from None
        return s.getsockname()[0]


def https_ports(args):
    """(ports, bind) for --https-ports P1,P2: servers on loopback at those ports."""
    if not getattr(args, "https_ports", None):
        return (0, 0), None
    try:
        right, other = (int(p) for p in args.https_ports.split(","))
    except ValueError:
        raise ToolError("--https-ports: give two port numbers, e.g. 8443,8444") from None
    return (right, other), "127.0.0.1"


def main(args):
    if not (BUILD / "onboard").is_dir():
        raise ToolError("build/onboard is missing: run `make build` first")
    wifi = {"ssid": args.wifi_ssid, "password": args.wifi_password} if args.wifi_ssid else None
    base = mpremote() + ["connect", args.port]
    with tempfile.TemporaryDirectory() as tmp, \
            HTTPSFixture(tmp, args.host or lan_address(), wifi, *https_ports(args)) as https:
        if subprocess.run(base + copy_commands(base, https.files, tmp)).returncode:
            raise ToolError(f"could not copy onboard to the board on {args.port}")
        failed = []
        for script in sorted(TESTS_DEVICE.glob("test_*.py")):
            proc = subprocess.run(base + ["run", str(script)], capture_output=True, text=True,
                                  timeout=args.timeout)
            print(proc.stdout, end="")
            why = verdict(proc.stdout)
            if why is None and script.name == "test_https.py":
                why = https.unseen()
            if why:
                failed.append(f"{script.name} ({why})")
    if failed:
        raise ToolError("failed on the board: " + ", ".join(failed))
    print("all device tests passed")
