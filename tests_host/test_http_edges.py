"""onboard.http and onboard.ahttp at their edges, from the server's side:
which redirects turn a POST into a GET, which replies are not redirects,
the default max_body, that the connection is closed when a request returns,
and that connect and send are bounded and named in the error."""

import json
import socket
import threading
import time

import pytest
from servers import Listener, json_reply, reply, unanswered_port, wait_closed
from test_http import OK, call, redirect, serve  # noqa: F401  (fixtures)

CLIENTS = ["sync", "async"]


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_301_302_or_303_turns_a_post_into_a_get_without_body_length_or_json_type(
        serve, call, status):  # noqa: F811
    def behaviour(conn, req):
        (redirect("/result", status) if req.startswith(b"POST") else OK)(conn, req)
    server = serve(behaviour)
    out = call(server.url("/submit"), method="POST", json={"a": 1})
    assert out["status"] == 200
    head, _, body = server.received[1].partition(b"\r\n\r\n")
    assert head.startswith(b"GET /result HTTP/1.1\r\n")
    assert b"content-type" not in head.lower() and b"content-length" not in head.lower()
    assert body == b""


def test_a_reply_that_is_not_a_redirect_is_returned_even_with_a_location(serve, call):  # noqa: F811
    server = serve(reply(b"HTTP/1.1 201 Created\r\nLocation: /things/1\r\n"
                         b"Content-Length: 2\r\n\r\nok"))
    out = call(server.url("/things"), method="POST", json={})
    assert (out["status"], out["body"], out["headers"]["location"]) == (201, "ok", "/things/1")
    assert server.connections == 1


def test_a_redirect_status_without_a_location_is_returned_as_is(serve, call):  # noqa: F811
    server = serve(reply(b"HTTP/1.1 302 Found\r\nContent-Length: 4\r\n\r\nhere"))
    out = call(server.url())
    assert (out["status"], out["body"]) == (302, "here")
    assert server.connections == 1


@pytest.mark.parametrize("size, refused", [(16384, False), (16385, True)])
def test_the_default_max_body_is_16384_bytes(serve, call, size, refused):  # noqa: F811
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
                           + b"z" * size)).url())
    if refused:
        assert (out["error"], out["message"]) == (
            "ProtocolError", "127.0.0.1: body: larger than max_body 16384")
    else:
        assert len(out["body"]) == size


TWO = """
import gc, json
gc.disable()  # (as a quiet loop may have it: no finaliser closes what was left open)
%(imports)s
try:
    first = %(first)s.status_code
except Exception as e:
    first = type(e).__name__
second = %(second)s
print(json.dumps([first, second.text]))
"""


def first_closed_before_second(serve, mpy, client, url, closed, options):  # noqa: F811
    """Two GETs by one process with the collector off: the first to url (with
    options), whose server sets the event closed once the client has closed its
    end; the second to a server that says whether that had happened by the time
    it was asked (a process exiting closes everything, so this asks before).
    Returns [the first's status or error name, "closed" or "open"]."""
    def tells(conn, req):
        said = b"closed" if closed.wait(10) else b"open"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(said), said))

    second = serve(tells)
    if client == "sync":
        imports, get = "from onboard import http", "http.get(%r, %s)"
    else:
        imports = "import asyncio\nfrom onboard.ahttp import arequest"
        get = "asyncio.run(arequest('GET', %r, %s))"
    code = TWO % {"imports": imports, "first": get % (url, options),
                  "second": get % (second.url(), "timeout=20")}
    return json.loads(mpy.run(code).lines[-1])


@pytest.mark.parametrize("answer,outcome", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200),
    (b"NOT HTTP\r\n\r\n", "ProtocolError")], ids=["answered", "failed"])
@pytest.mark.parametrize("client", CLIENTS)
def test_the_connection_is_closed_when_the_request_returns(serve, mpy, client, answer,  # noqa: F811
                                                           outcome):
    # the first server answers (length-framed, or not HTTP: the request
    # fails) and keeps its end open until the client closes it
    closed = threading.Event()

    def stays(conn, req):
        conn.sendall(answer)
        wait_closed(conn)
        closed.set()

    url = serve(stays).url()
    assert first_closed_before_second(serve, mpy, client, url, closed, "timeout=5") == [
        outcome, "closed"]


class PlainPort(Listener):
    """A port that answers a TLS client's hello with plain HTTP (an https://
    URL to a plain server), so the handshake fails; .closed is set once the
    client has closed its end."""

    def __init__(self):
        self.closed = threading.Event()
        super().__init__()

    def serve(self, conn):
        conn.settimeout(30)
        conn.recv(4096)  # the client's hello
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        wait_closed(conn)
        self.closed.set()


@pytest.mark.parametrize("client", CLIENTS)
def test_a_failed_tls_handshake_closes_the_connection(serve, mpy, client):  # noqa: F811
    # MicroPython's TLS socket lets go of its plain socket when a handshake
    # fails; the client must close that socket itself, not leave it to the
    # collector (off here)
    first = PlainPort()
    try:
        out = first_closed_before_second(serve, mpy, client, f"https://127.0.0.1:{first.port}/",
                                         first.closed, "timeout=5, insecure=True")
    finally:
        first.close()
    assert out == ["NetError", "closed"]


ONE = """
import json
%(imports)s
try:
    %(request)s
    out = "answered"
except Exception as e:
    out = [type(e).__name__, str(e)]
print(json.dumps(out))
"""


def fails_with(mpy, client, method, url, body="None", heapsize=None, prelude=""):
    """[error type, message] of one request with timeout=2 under the Unix port,
    after the code prelude; the run itself is bounded, so a client that hangs
    fails the test."""
    if client == "sync":
        imports = "from onboard import http"
        request = f"http.request({method!r}, {url!r}, data={body}, timeout=2)"
    else:
        imports = "import asyncio\nfrom onboard.ahttp import arequest"
        request = f"asyncio.run(arequest({method!r}, {url!r}, data={body}, timeout=2))"
    code = ONE % {"imports": imports + "\n" + prelude, "request": request}
    return json.loads(mpy.run(code, heapsize=heapsize, timeout=30).lines[-1])


@pytest.mark.parametrize("client", CLIENTS)
def test_a_server_that_accepts_no_connection_ends_in_a_connect_timeout(mpy, client):
    with unanswered_port() as port:
        out = fails_with(mpy, client, "GET", f"http://127.0.0.1:{port}/")
    assert out == ["Timeout", "127.0.0.1: connect: timed out"]


class Deaf:
    """Accepts connections and never reads them (a small receive buffer), so
    a large request body fills the buffers and the client's send blocks."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.took(self.sock.accept()[0])
            except OSError:
                return

    def took(self, conn):
        self.conns.append(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class Sluggish(Deaf):
    """Reads every connection, 64 KB each half second (the pace of a peer on a
    poor link): each partial send makes progress, so only a deadline over the
    whole send can end it."""

    def took(self, conn):
        self.conns.append(conn)
        threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn):
        try:
            while conn.recv(65536):
                time.sleep(0.5)  # the peer's pace, not a wait for an event
        except OSError:
            pass


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("peer", [Deaf, Sluggish], ids=["reads-nothing", "reads-slowly"])
def test_a_server_that_reads_too_slowly_ends_in_a_send_timeout(mpy, client, peer):
    # 6 MB outgrow what loopback's socket buffers hold (the send buffer grows
    # to 4 MB at most), so the body cannot all be handed to the kernel; at
    # Sluggish's 128 KB/s it would take 47 s, past the 30 s the run is allowed:
    # a send that gave each partial write the whole timeout again ran on
    server = peer()
    try:
        out = fails_with(mpy, client, "POST", f"http://127.0.0.1:{server.port}/",
                         body="b'x' * 6000000", heapsize="32M")
    finally:
        server.close()
    assert out == ["Timeout", "127.0.0.1: send: timed out"]


# The reply's bounds: a server that sends one byte past a bound, then stalls,
# is refused at once; one that stops exactly at the bound is waited for.

def stalls_after(raw):
    def behaviour(conn, req):
        conn.sendall(raw)
        wait_closed(conn)
    return behaviour


STATUS = b"HTTP/1.1 200 OK\r\n"
CHUNKED = STATUS + b"Transfer-Encoding: chunked\r\n\r\n"


def unended_head(size):
    # a head of `size` bytes that has not ended (no blank line yet)
    return STATUS + b"X: " + b"y" * (size - len(STATUS) - 3)


@pytest.mark.parametrize("raw, phase", [
    (unended_head(4097), "status"),
    (CHUNKED + b"0" * 65, "body"),  # a chunk-size line
    (CHUNKED + b"0\r\n" + b"T: " + b"t" * 254, "body"),  # a trailer line
], ids=["head-4097", "chunk-size-line-65", "trailer-line-257"])
def test_a_head_or_line_one_byte_past_its_bound_is_refused_without_waiting(
        serve, call, raw, phase):  # noqa: F811
    out = call(serve(stalls_after(raw)).url(), timeout=5)
    assert (out["error"], out["message"]) == ("ProtocolError", f"127.0.0.1: {phase}: malformed")


def test_a_head_of_exactly_4096_bytes_so_far_is_waited_for(serve, call):  # noqa: F811
    out = call(serve(stalls_after(unended_head(4096))).url(), timeout=2)
    assert (out["error"], out["message"]) == ("Timeout", "127.0.0.1: reply: timed out")


def whole_head(size):
    # a reply whose head, blank line included, is `size` bytes of short header
    # lines, sent in one piece (no body)
    start, end = STATUS + b"Content-Length: 0\r\n", b"T: x\r\n"
    n = (size - len(start) - 2) // len(end) - 1
    last = size - len(start) - 2 - n * len(end)
    return start + end * n + b"T: " + b"x" * (last - 5) + b"\r\n\r\n"


def test_a_whole_head_of_4097_bytes_is_refused_even_when_it_comes_at_once(serve, call):  # noqa: F811
    assert len(whole_head(4097)) == 4097
    out = call(serve(reply(whole_head(4097))).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: status: malformed")


def test_a_whole_head_of_4096_bytes_is_taken(serve, call):  # noqa: F811
    assert len(whole_head(4096)) == 4096
    assert call(serve(reply(whole_head(4096))).url())["status"] == 200


# The request: header values, the method; the Response's json()

def test_a_header_value_that_is_not_a_string_is_sent_as_its_text(serve, call):  # noqa: F811
    server = serve(OK)
    assert call(server.url(), headers={"X-Count": 42})["status"] == 200
    assert b"\r\nX-Count: 42\r\n" in server.received[0]


@pytest.mark.parametrize("method", ["GET /evil", "GE\tT", "GET\r\nX-Evil: 1\r\n"])
def test_a_method_with_a_space_or_control_character_is_refused_before_connecting(
        serve, call, method):  # noqa: F811
    server = serve(OK)
    out = call(server.url(), method=method)
    assert (out["error"], out["message"], server.connections) == (
        "ValueError", "method: malformed", 0)


JSON = """
import json
%(imports)s
r = %(request)s
print(json.dumps(r.json()))
"""


@pytest.mark.parametrize("client", CLIENTS)
def test_response_json_parses_the_body(serve, mpy, client):  # noqa: F811
    url = serve(json_reply('{"a": [1, 2], "b": null}')).url()
    if client == "sync":
        imports, request = "from onboard import http", f"http.get({url!r}, timeout=5)"
    else:
        imports = "import asyncio\nfrom onboard.ahttp import arequest"
        request = f"asyncio.run(arequest('GET', {url!r}, timeout=5))"
    out = json.loads(mpy.run(JSON % {"imports": imports, "request": request}).lines[-1])
    assert out == {"a": [1, 2], "b": None}


# Deadlines and the event loop

def floods(conn, req):
    # a chunked reply whose trailer never ends: every read finds bytes waiting,
    # so only the deadline, checked between reads, can end the exchange
    try:
        conn.sendall(CHUNKED + b"0\r\n")
        while True:
            conn.sendall(b"T: x\r\n" * 4096)
    except OSError:
        pass


@pytest.mark.parametrize("client", CLIENTS)
def test_a_reply_that_never_stops_arriving_ends_at_the_deadline(serve, mpy, client):  # noqa: F811
    out = fails_with(mpy, client, "GET", serve(floods).url())
    assert out == ["Timeout", "127.0.0.1: reply: timed out"]


LOOP = """
import asyncio, json
from onboard.ahttp import arequest

async def main():
    other = asyncio.create_task(arequest("GET", %(b)r, timeout=15))
    r = await arequest("GET", %(a)r, timeout=15)
    await other
    print(json.dumps(r.text))

asyncio.run(main())
"""


def test_the_event_loop_keeps_running_while_arequest_waits(serve, mpy):  # noqa: F811
    # the first server answers only once the second has heard from the other
    # task; if arequest blocked the loop, that task could not run meanwhile
    heard = threading.Event()

    def waits(conn, req):
        said = b"ran" if heard.wait(10) else b"blocked"
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(said), said))

    def hears(conn, req):
        heard.set()
        OK(conn, req)

    a, b = serve(waits), serve(hears)
    assert json.loads(mpy.run(LOOP % {"a": a.url(), "b": b.url()}).lines[-1]) == "ran"



NO_SOCKETS = """
import socket
# loaded when an error happens, and onboard.http's message code by the first
# request: each load would need a descriptor too
import onboard.errors, onboard.httpmsg
held = []
try:
    while True:  # every descriptor the process may have (the limit is finite)
        held.append(socket.socket())
except OSError:
    pass
"""


@pytest.mark.parametrize("client", CLIENTS)
def test_a_request_that_cannot_get_a_socket_is_a_net_error_naming_connect(
        serve, mpy, client):  # noqa: F811
    server = serve(OK)
    out = fails_with(mpy, client, "GET", server.url(), prelude=NO_SOCKETS)
    assert out[0] == "NetError" and out[1].startswith("127.0.0.1: connect: error ")
    assert server.connections == 0


@pytest.mark.parametrize("data, sent", [("h\u00e9llo", "h\u00e9llo".encode()), ("", b"")],
                         ids=["utf-8-text", "empty"])
def test_a_body_goes_with_its_length_in_bytes(serve, call, data, sent):  # noqa: F811
    server = serve(OK)
    assert call(server.url(), method="PUT", data=data)["status"] == 200
    head, _, body = server.received[0].partition(b"\r\n\r\n")
    assert b"\r\nContent-Length: %d\r\n" % len(sent) in head + b"\r\n"
    assert body == sent
