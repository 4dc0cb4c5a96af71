"""Scripted TCP/TLS servers on loopback for the client tests (CPython).

Each connection's request (head and body) is recorded decrypted, so a test
can assert what a client did or did not send."""

import socket
import ssl
import threading
import time


class Server:
    def __init__(self, behaviour, tls=None, port=0):
        """behaviour(conn, request_bytes) answers one connection;
        tls: (certfile, keyfile) to serve TLS; port: 0 for a free one."""
        self.behaviour = behaviour
        self.received = []
        self.tls_failures = 0
        self.connections = 0
        self._ctx = None
        if tls:
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.load_cert_chain(*map(str, tls))
        self._sock = socket.create_server(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self._conns = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path="/"):
        return f"{'https' if self._ctx else 'http'}://127.0.0.1:{self.port}{path}"

    def _accept(self):
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(30)
            if self._ctx:
                try:
                    conn = self._ctx.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    self.tls_failures += 1
                    return
                self._conns.append(conn)
            data = read_request(conn)
            self.received.append(data)
            self.behaviour(conn, data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._closed.set()
        self._sock.close()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(4096)
        if not part:
            return data
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        part = conn.recv(4096)
        if not part:
            break
        body += part
    return head + b"\r\n\r\n" + body


def wait_closed(conn):
    """Block until the client closes (or the server is shut down)."""
    try:
        while conn.recv(1024):
            pass
    except OSError:
        pass


# Behaviours --------------------------------------------------------------

def reply(raw):
    return lambda conn, req: conn.sendall(raw)


def json_reply(body, status="200 OK", extra=""):
    payload = body.encode() if isinstance(body, str) else body
    return reply(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\n{extra}\r\n".encode() + payload)


def reply_and_stay(raw):
    """Send raw, then keep the connection open until the client closes it."""
    def behaviour(conn, req):
        conn.sendall(raw)
        wait_closed(conn)
    return behaviour


def silent(conn, req):
    wait_closed(conn)


def half_header(conn, req):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
    wait_closed(conn)


def trickle(conn, req):
    # one byte a second of an endless header: each read succeeds, the whole never ends
    try:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while True:
            conn.sendall(b"X")
            time.sleep(1)
    except OSError:
        pass
