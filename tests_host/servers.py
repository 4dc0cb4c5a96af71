"""Scripted TCP/TLS servers on loopback for the client tests (CPython).

Each connection's request (head and body) is recorded decrypted, so a test
can assert what a client did or did not send."""

import contextlib
import socket
import ssl
import threading
import time


def pipe(a, b):
    """Copy what a receives to b until a ends or fails, then close both."""
    try:
        while data := a.recv(16384):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass


def eventually(done, what, timeout=20):
    """Poll done() (what the world outside the device shows: a server's log,
    a relay's counts, a file) until it is true; AssertionError naming what
    when it is not within timeout."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def dead_port():
    """A loopback port that was free a moment ago: nothing listens there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def unanswered_port():
    """A port whose connects get no answer: a backlog of 0 holds one
    connection; with it queued and never accepted, the kernel drops the
    client's SYNs."""
    import select

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.socket()
    filler.setblocking(False)
    filler.connect_ex(("127.0.0.1", port))
    try:
        assert select.select([listener], [], [], 10)[0], "the filler was not queued"
        yield port
    finally:
        filler.close()
        listener.close()


class Listener:
    """A loopback TCP port whose connections serve(conn) handles, each in a
    thread of its own; close() leaves the port dead (nothing listens).
    where: the address to listen on (a free port on 127.0.0.1 by default)."""

    def __init__(self, where=("127.0.0.1", 0)):
        self.sock = socket.create_server(where)
        self.port = self.sock.getsockname()[1]
        self.connections = 0  # accepted so far
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def serve(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)  # (a close alone leaves a pending accept listening)
        self.sock.close()


class Relay(Listener):
    """A loopback TCP port relayed to another; close() leaves it dead."""

    def __init__(self, port):
        self.to = port
        super().__init__()

    def serve(self, conn):
        up = socket.create_connection(("127.0.0.1", self.to))
        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
        pipe(conn, up)


class RefusingBroker(Listener):
    """An MQTT broker that answers every CONNECT with CONNACK code (3: server
    unavailable, 5: not authorized), over TLS with tls (a server-side
    SSLContext) when given; .refused counts the answers."""

    def __init__(self, code, tls=None, where=("127.0.0.1", 0)):
        self.code, self.tls, self.refused = code, tls, 0
        super().__init__(where)

    def serve(self, conn):
        conn.settimeout(10)
        if self.tls:
            conn = self.tls.wrap_socket(conn, server_side=True)
        with conn:
            if conn.recv(1)[:1] == b"\x10":  # CONNECT
                conn.sendall(bytes((0x20, 2, 0, self.code)))
                self.refused += 1
                while conn.recv(1024):  # the rest, until the device closes
                    pass


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


class TrickledTLS(Server):
    """A TLS server on loopback that sends one part of each connection a byte
    at a time, DELAY apart, inside single TLS records: its handshake flight
    ("handshake"), or its answer ("reply": sent as one record once the
    client's first application data came). Every raw read then gets a byte
    and no record completes before a client's deadline: only a deadline over
    the whole TLS exchange ends it (a TLS layer that waits for whole records
    gives each raw read the socket's full timeout again). It gives up and
    closes after GIVE_UP s, before either part is whole. (Python's ssl
    sockets send each write as records of its own; a memory BIO lets the
    bytes of one record go out apart.)"""

    DELAY = 0.2
    GIVE_UP = 30

    def __init__(self, cert, where, answer=b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n"
                 + b"x" * 300):
        self.where, self.answer = where, answer
        super().__init__(None, cert)

    def _serve(self, conn):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._ctx.wrap_bio(incoming, outgoing, server_side=True)
        until = time.monotonic() + self.GIVE_UP

        def send(slow):
            data = outgoing.read()
            if not slow:
                conn.sendall(data)
                return
            for i in range(len(data)):
                if self._closed.wait(self.DELAY) or time.monotonic() > until:
                    raise OSError("given up")
                conn.sendall(data[i:i + 1])

        def receive():
            data = conn.recv(4096)
            if not data:
                raise OSError("closed")
            incoming.write(data)

        try:
            conn.settimeout(self.GIVE_UP)
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    send(self.where == "handshake")
                    receive()
            send(self.where == "handshake")
            while True:  # the client's first application data
                try:
                    if tls.read(4096):
                        break
                except ssl.SSLWantReadError:
                    send(False)
                    receive()
            tls.write(self.answer)
            send(self.where == "reply")
            self._closed.wait(self.GIVE_UP)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


class Blackhole(Listener):
    """A TCP relay to a server on loopback's port (plgd's gateway, Blynk's
    MQTT front) that can stop passing bytes, both ways, while both
    connections stay open (a link gone silent)."""

    def __init__(self, port):
        self.target, self.silent = port, threading.Event()
        self.dropped = 0  # chunks from the device not passed on while silent
        self.ended = []  # dropped, when each of the device's connections ended
        self.sockets = []  # both sides of each connection (closed at close())
        self.to_device = threading.Semaphore(0)  # released for each chunk passed to it
        super().__init__()  # (connections: the device's, in all)

    def serve(self, conn):
        up = socket.create_connection(("127.0.0.1", self.target))
        self.sockets += [conn, up]
        threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()
        self._pump(conn, up)

    def _pump(self, src, dst):
        to_device = dst.getsockname()[1] == self.port  # (the device's side: accepted here)
        try:
            while data := src.recv(65536):
                if not self.silent.is_set():
                    dst.sendall(data)
                    if to_device:
                        self.to_device.release()
                elif not to_device:
                    self.dropped += 1
        except OSError:
            pass
        finally:  # one side closed: so does the other, but for the device's while
            if not to_device:  # silent (nothing closes)
                self.ended.append(self.dropped)
            if not (self.silent.is_set() and to_device):
                # shut down first: a close alone, while the other pump waits
                # in this socket's recv, sends no FIN until that recv returns
                # (the device learnt of the end only when it next sent)
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_RDWR)
                dst.close()

    def close(self):
        super().close()
        for sock in self.sockets:
            sock.close()
