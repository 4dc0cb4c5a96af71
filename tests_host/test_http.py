"""onboard.http under the Unix port against scripted loopback servers."""

import json
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from servers import (
    Server,
    TrickledTLS,
    half_header,
    json_reply,
    read_request,
    reply,
    reply_and_stay,
    silent,
    trickle,
)

from cloudsim.pki import CA

SECRET = "tok-5ecret-abcdef123456"

CALL = """
import json, time
from onboard import http
kw = %(kw)s
t0 = time.ticks_ms()
try:
    if %(aio)r:
        import asyncio
        from onboard.ahttp import arequest
        r = asyncio.run(arequest(%(method)r, %(url)r, **kw))
    else:
        r = http.request(%(method)r, %(url)r, **kw)
    out = {"status": r.status_code, "headers": r.headers, "body": r.content.decode()}
except Exception as e:
    out = {"error": type(e).__name__, "message": str(e)}
out["s"] = time.ticks_diff(time.ticks_ms(), t0) / 1000
print(json.dumps(out))
"""


def issue_dated(ca, folder, stem, start_days, end_days):
    """A server certificate for 127.0.0.1 valid from now+start_days to now+end_days."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=start_days))
            .not_valid_after(now + datetime.timedelta(days=end_days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca.key, hashes.SHA256()))
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / f"{stem}.pem", folder / f"{stem}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, other = CA(), CA("some other CA")
    (d / "ca.pem").write_bytes(ca.pem())
    (d / "ca.der").write_bytes(ca.der())
    (d / "other-then-ca.pem").write_bytes(other.pem() + b"\n" + ca.pem())
    (d / "ca-then-other.pem").write_bytes(ca.pem() + other.pem())
    (d / "other-then-ca.der").write_bytes(other.der() + ca.der())
    (d / "ca-then-other.der").write_bytes(ca.der() + other.der())
    return {
        "other-then-ca.der": str(d / "other-then-ca.der"),
        "ca-then-other.der": str(d / "ca-then-other.der"),
        "other-then-ca": str(d / "other-then-ca.pem"),
        "ca-then-other": str(d / "ca-then-other.pem"),
        "expired": issue_dated(ca, d, "expired", -30, -1),
        "not_yet_valid": issue_dated(ca, d, "not-yet-valid", 1, 30),
        "dir": d,
        "ca": str(d / "ca.pem"),
        "ca_der": str(d / "ca.der"),
        "good": ca.write_server(d, "good"),
        "other_ca": other.write_server(d, "other"),
        "wrong_host": ca.write_server(d, "wrong", names=("device.example",), ips=()),
    }


@pytest.fixture
def serve():
    started = []

    def start(behaviour, tls=None):
        s = Server(behaviour, tls)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


@pytest.fixture(params=["sync", "async"])
def call(request, mpy):
    def run(url, method="GET", **kw):
        kw.setdefault("timeout", 5)
        code = CALL % {"kw": repr(kw), "aio": request.param == "async", "method": method,
                       "url": url}
        return json.loads(mpy.run(code).lines[-1])
    return run


OK = json_reply('{"hello": "device"}')


# TLS --------------------------------------------------------------------

def test_https_with_the_right_ca_succeeds(serve, call, pki):
    server = serve(OK, tls=pki["good"])
    out = call(server.url("/v1/x"), ca=pki["ca"])
    assert (out["status"], json.loads(out["body"])) == (200, {"hello": "device"})
    assert server.received[0].startswith(b"GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n")


def test_https_accepts_a_der_ca(serve, call, pki):
    server = serve(OK, tls=pki["good"])
    assert call(server.url(), ca=pki["ca_der"])["status"] == 200


@pytest.mark.parametrize("cert", ["other_ca", "wrong_host"])
def test_untrusted_or_misnamed_certificate_fails_before_anything_is_sent(serve, call, pki, cert):
    server = serve(OK, tls=pki[cert])
    out = call(server.url(), method="POST", ca=pki["ca"], headers={"x-access-token": SECRET},
               json={"k": SECRET})
    assert out["error"] == "TLSError"
    assert out["message"].startswith("127.0.0.1: tls: ")
    assert server.received == []
    assert server.connections == 1


@pytest.mark.parametrize("bundle", ["other-then-ca", "ca-then-other", "other-then-ca.der",
                                    "ca-then-other.der"])
def test_every_certificate_of_a_ca_bundle_is_trusted(serve, call, pki, bundle):
    server = serve(OK, tls=pki["good"])
    assert call(server.url(), ca=pki[bundle])["status"] == 200


@pytest.mark.parametrize("cert, reason", [("expired", "expired"),
                                          ("not_yet_valid", "in the future")])
def test_expired_or_not_yet_valid_certificate_is_a_tls_error(serve, call, pki, cert, reason):
    server = serve(OK, tls=pki[cert])
    out = call(server.url(), ca=pki["ca"], headers={"x-access-token": SECRET})
    assert out["error"] == "TLSError"
    assert out["message"].startswith("127.0.0.1: tls: certificate refused: ")
    assert reason in out["message"]
    assert server.received == []


class HelloReader:
    """A TCP server that reads the ClientHello of each connection, then answers
    it with `answer` (bytes, or None to hang up) and closes; until_closed:
    after the answer it reads until the client's side ends, then sets ended."""

    def __init__(self, answer, until_closed=False):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hellos = 0
        self.ended = threading.Event()
        threading.Thread(target=self._run, args=(answer, until_closed), daemon=True).start()

    def _run(self, answer, until_closed):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if conn.recv(4096).startswith(b"\x16\x03"):  # a TLS handshake record
                    self.hellos += 1
                if answer:
                    conn.sendall(answer)
                if until_closed:
                    conn.settimeout(60)
                    try:
                        while conn.recv(4096):
                            pass
                    except OSError:  # (a reset ends it too)
                        pass
                    self.ended.set()


@pytest.mark.parametrize("answer", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"],
                         ids=["peer-hangs-up", "not-tls"])
def test_handshake_that_fails_without_a_certificate_verdict_is_a_net_error_not_tls(
        call, pki, answer):
    server = HelloReader(answer)
    out = call(f"https://127.0.0.1:{server.port}/", ca=pki["ca"])
    server.sock.close()
    assert server.hellos == 1
    assert out["error"] == "NetError"
    assert out["message"].startswith("127.0.0.1: tls: error ")


# MicroPython's TLS module lets go of the raw socket of a handshake that failed
# without closing it (v1.25 extmod/modtls_mbedtls.c): the collector would, in
# time. The script turns the collector off, as a board whose loop allocates
# little has it, and stays up until told to end.
CUT_HANDSHAKE = """
import gc, sys
gc.disable()
try:
    if sys.argv[1] == "http":
        from onboard.http import request
        request("GET", "https://127.0.0.1:%d/" % int(sys.argv[2]), ca=sys.argv[3], timeout=10)
    else:
        from onboard.ca import context
        from onboard.mqtt import MQTTClient
        MQTTClient("t", "127.0.0.1", int(sys.argv[2]), ssl=context(sys.argv[3]),
                   timeout=10).connect()
except OSError as e:
    print("failed", type(e).__name__)
sys.stdin.readline()
"""


@pytest.mark.parametrize("client", ["http", "mqtt"])
def test_a_tls_handshake_that_fails_closes_its_connection_at_once(mpy, pki, client):
    # the server answers the ClientHello with text, not TLS, then reads until
    # the device's side of the connection ends
    server = HelloReader(b"HTTP/1.1 400 Not TLS\r\n\r\n", until_closed=True)
    script = mpy.workdir / "cut.py"
    script.write_text(CUT_HANDSHAKE)
    proc = subprocess.Popen([mpy.binary, str(script), client, str(server.port), pki["ca"]],
                            cwd=mpy.workdir, env=mpy.env(), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        closed = server.ended.wait(30)  # (the device's program still runs, its collector off)
    finally:
        out = proc.communicate("\n", timeout=30)[0]
        server.sock.close()
    assert out.startswith("failed "), out
    assert server.hellos == 1
    assert closed, "the connection stayed open after the failed handshake"


def test_server_silent_during_the_handshake_is_a_timeout(serve, call, pki):
    server = serve(silent)
    out = call(f"https://127.0.0.1:{server.port}/", ca=pki["ca"], timeout=2)
    assert (out["error"], out["message"]) == ("Timeout", "127.0.0.1: tls: timed out")


@pytest.mark.parametrize("content", [
    b"", b"x", b"not a certificate at all",
    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_a_ca_file_that_holds_no_certificate_is_a_value_error_naming_ca(serve, call, tmp_path,
                                                                        content):
    (tmp_path / "bad.pem").write_bytes(content)
    server = serve(OK, tls=None)
    out = call(server.url().replace("http:", "https:"), ca=str(tmp_path / "bad.pem"))
    assert (out["error"], out["message"]) == ("ValueError", "ca: not a PEM or DER certificate")
    assert server.connections == 0


@pytest.mark.parametrize("path", ["missing.pem", "folder", "huge.pem"],
                         ids=["missing", "a folder", "one byte over 64 KB"])
def test_a_ca_file_that_cannot_be_read_is_a_value_error_naming_it(serve, call, tmp_path, pki,
                                                                  path):
    (tmp_path / "folder").mkdir()
    pem = Path(pki["ca"]).read_bytes()  # (a good CA, padded past the bound by one byte)
    (tmp_path / "huge.pem").write_bytes(pem + b"\n" * (65537 - len(pem)))
    server = serve(OK, tls=None)
    out = call(server.url().replace("http:", "https:"), ca=str(tmp_path / path))
    assert (out["error"], out["message"]) == ("ValueError", f"ca: cannot read {tmp_path / path}")
    assert server.connections == 0


def test_a_ca_file_of_exactly_64_kb_is_read_and_trusted(serve, call, tmp_path, pki):
    pem = Path(pki["ca"]).read_bytes()
    (tmp_path / "ca.pem").write_bytes(pem + b"\n" * (65536 - len(pem)))  # (the bound's edge)
    server = serve(OK, tls=pki["good"])
    assert call(server.url(), ca=str(tmp_path / "ca.pem"))["status"] == 200


@pytest.mark.parametrize("insecure", ["false", 1, "yes"])
def test_only_insecure_true_turns_verification_off(serve, call, pki, insecure):
    server = serve(OK, tls=pki["other_ca"])
    out = call(server.url(), ca=pki["ca"], insecure=insecure)
    assert out["error"] == "TLSError"


def test_https_without_a_ca_is_refused_unless_insecure_is_explicit(serve, call, pki):
    server = serve(OK, tls=pki["other_ca"])
    refused = call(server.url())
    assert (refused["error"], server.connections) == ("ValueError", 0)
    assert refused["message"].startswith("ca: ")
    assert call(server.url(), insecure=True)["status"] == 200


# Timeouts -----------------------------------------------------------------

@pytest.mark.parametrize("behaviour", [silent, half_header, trickle],
                         ids=["never-answers", "half-header", "byte-a-second"])
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_stalling_server_ends_in_timeout(serve, call, pki, behaviour, tls):
    # byte-a-second: every read gets something, so only a deadline over the whole reply ends it.
    # The deadline covers the TLS handshake too: 2 s once ran out during it in CI (the host
    # tests beside the emulated ESP32 on 2 cores), and the phase was then tls, not reply
    server = serve(behaviour, tls=pki["good"] if tls else None)
    out = call(server.url(), ca=pki["ca"], timeout=8 if tls else 2,
               headers={"x-access-token": SECRET})
    assert out["error"] == "Timeout"
    assert out["message"] == "127.0.0.1: reply: timed out"



@pytest.mark.parametrize("where,phase", [("handshake", "tls"), ("reply", "reply")])
def test_a_tls_record_sent_a_byte_at_a_time_ends_in_timeout(call, pki, where, phase):
    # every raw read gets a byte, no record completes: the deadline must bound
    # the whole TLS exchange, not each read (8 s: the handshake itself must
    # finish in time when the reply is the slow part, on a loaded machine)
    server = TrickledTLS(pki["good"], where)
    try:
        out = call(server.url(), ca=pki["ca"], timeout=4 if where == "handshake" else 8)
    finally:
        server.close()
    assert (out["error"], out["message"]) == ("Timeout", f"127.0.0.1: {phase}: timed out")


# Bodies -------------------------------------------------------------------

def test_chunked_body_is_decoded(serve, call):
    server = serve(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n"))
    out = call(server.url())
    assert (out["status"], out["body"]) == (200, "hello, world")


def test_chunk_sizes_are_read_as_hexadecimal_in_either_case(serve, call):
    first, second = "a" * 0x1F, "b" * 0x10
    server = serve(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + f"1F\r\n{first}\r\n10\r\n{second}\r\n0\r\n\r\n".encode()))
    assert call(server.url())["body"] == first + second


def test_content_length_body_is_decoded_and_headers_are_lower_case(serve, call):
    server = serve(json_reply('{"a": 1}', extra="X-Thing: Yes\r\n"))
    out = call(server.url())
    assert out["body"] == '{"a": 1}'
    assert out["headers"]["x-thing"] == "Yes"


def test_body_until_close_is_read_when_no_length_is_given(serve, call):
    server = serve(reply(b"HTTP/1.1 200 OK\r\n\r\nno length here"))
    assert call(server.url())["body"] == "no length here"


def big_body(framing):
    # 10 MB: one piece announced (length, chunked), none (close), or 1,000-byte
    # chunks, each under any max_body here (chunks)
    sent = {"failed": False, "done": threading.Event()}

    def behaviour(conn, req):
        head = {"length": b"Content-Length: 10000000\r\n\r\n",
                "chunked": b"Transfer-Encoding: chunked\r\n\r\n989680\r\n",
                "chunks": b"Transfer-Encoding: chunked\r\n\r\n",
                "close": b"\r\n"}[framing]
        piece, n = (b"3e8\r\n" + b"x" * 1000 + b"\r\n", 10000) if framing == "chunks" \
            else (b"x" * 10000, 1000)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + head)
            for _ in range(n):
                conn.sendall(piece)
        except OSError:
            sent["failed"] = True
        sent["done"].set()
    return behaviour, sent


@pytest.mark.parametrize("framing", ["length", "chunked", "chunks", "close"])
def test_body_over_max_body_raises_without_reading_it_all(serve, call, framing):
    behaviour, sent = big_body(framing)
    server = serve(behaviour)
    out = call(server.url(), max_body=4096)
    assert out["error"] == "ProtocolError"
    assert "max_body 4096" in out["message"]
    assert sent["done"].wait(60)
    assert sent["failed"], "the server managed to send all 10 MB"


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_body_of_exactly_max_body_is_returned(serve, call, framing):
    body = b"y" * 300
    head = {"length": b"Content-Length: 300\r\n\r\n" + body,
            "chunked": b"Transfer-Encoding: chunked\r\n\r\n96\r\n" + body[:150]
                       + b"\r\n96\r\n" + body[150:] + b"\r\n0\r\n\r\n",
            "close": b"\r\n" + body}[framing]
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\n" + head)).url(), max_body=300)
    assert (out.get("error"), out.get("body")) == (None, body.decode())


@pytest.mark.parametrize("after", [b"XY", b"\n\r"])
def test_chunk_data_not_followed_by_crlf_is_a_protocol_error(serve, call, after):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\r\nhello" + after + b"0\r\n\r\n")).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: body: malformed")


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort",
], ids=["length", "chunked"])
def test_truncated_body_raises(serve, call, raw):
    out = call(serve(reply(raw)).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: body: truncated")


@pytest.mark.parametrize("raw", [b"garbage\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", b"\xff\xfe\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 2000])
def test_malformed_reply_raises_protocol_error(serve, call, raw):
    assert call(serve(reply(raw)).url())["error"] == "ProtocolError"


@pytest.mark.parametrize("line", [b"HTTP/1.1 600 Beyond", b"HTTP/1.1 099 Early",
                                  b"ICY 200 OK", b"HTTP/2 200 OK"])
def test_a_status_line_outside_http_1_and_100_to_599_is_a_protocol_error(serve, call, line):
    out = call(serve(reply(line + b"\r\nContent-Length: 0\r\n\r\n")).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: status: malformed")


@pytest.mark.parametrize("status", [200, 599])
def test_statuses_up_to_599_are_returned(serve, call, status):
    out = call(serve(reply(b"HTTP/1.0 %d Any\r\nContent-Length: 2\r\n\r\nok" % status)).url())
    assert (out["status"], out["body"]) == (status, "ok")


@pytest.mark.parametrize("method,head", [
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"),
    ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 11\r\n\r\n")],
    ids=["HEAD", "204", "304"])
def test_replies_that_have_no_body_end_at_their_head_while_the_server_stays(serve, call,
                                                                            method, head):
    # the server keeps the connection open: reading a body would wait for the timeout
    out = call(serve(reply_and_stay(head)).url(), method=method, timeout=5)
    assert (out.get("error"), out.get("body")) == (None, "")


# Requests and redirects ---------------------------------------------------

def test_post_json_sends_body_with_length_and_type(serve, call):
    server = serve(json_reply("{}", status="201 Created"))
    out = call(server.url("/v5/enroll"), method="POST", json={"type": "production_token"},
               headers={"Authorization": "Basic abc"})
    assert out["status"] == 201
    head, _, body = server.received[0].partition(b"\r\n\r\n")
    assert json.loads(body) == {"type": "production_token"}
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert b"\r\nAuthorization: Basic abc" in head


def hops(serve, n, final=OK):
    """A chain of n redirect servers ending at a server answering final."""
    target = serve(final)
    url = target.url("/end")
    for _ in range(n):
        url = serve(reply(f"HTTP/1.1 302 Found\r\nLocation: {url}\r\n"
                          "Content-Length: 0\r\n\r\n".encode())).url("/start")
    return url, target


def test_three_redirects_are_followed(serve, call):
    url, target = hops(serve, 3)
    assert call(url)["status"] == 200
    assert target.received[0].startswith(b"GET /end ")


def test_a_fourth_redirect_is_refused(serve, call):
    url, target = hops(serve, 4)
    out = call(url)
    assert out["error"] == "NetError" and "redirect" in out["message"]
    assert target.received == []


def test_redirect_to_another_scheme_is_refused(serve, call):
    server = serve(reply(b"HTTP/1.1 301 Moved\r\nLocation: https://127.0.0.1:1/\r\n"
                         b"Content-Length: 0\r\n\r\n"))
    out = call(server.url())
    assert out["error"] == "NetError"
    assert out["message"] == "127.0.0.1: redirect: to another origin refused"


def test_redirect_303_turns_post_into_get_and_relative_location_works(serve, call):
    def behaviour(conn, req):
        if req.startswith(b"POST"):
            conn.sendall(b"HTTP/1.1 303 See Other\r\nLocation: /result\r\n"
                         b"Content-Length: 0\r\n\r\n")
        else:
            OK(conn, req)
    server = serve(behaviour)
    assert call(server.url("/submit"), method="POST", json={"a": 1})["status"] == 200
    assert server.received[1].startswith(b"GET /result HTTP/1.1\r\n")
    # the GET carries no body and says nothing of one
    assert b"content-" not in server.received[1].lower()


@pytest.mark.parametrize("method, then", [("POST", b"GET"), ("PUT", b"PUT")])
def test_a_302_turns_a_post_into_a_get_and_keeps_other_methods(serve, call, method, then):
    # as browsers and requests do; a PUT keeps its method and its body
    def behaviour(conn, req):
        (OK if req.startswith(b"GET /end ") or req.startswith(b"PUT /end ") else
         redirect("/end", 302))(conn, req)
    server = serve(behaviour)
    assert call(server.url("/start"), method=method, data="b=1")["status"] == 200
    assert server.received[1].startswith(then + b" /end HTTP/1.1\r\n")
    assert server.received[1].endswith(b"\r\n\r\n" if then == b"GET" else b"\r\n\r\nb=1")


def redirect(location, status=307):
    return reply(f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n"
                 "Content-Length: 0\r\n\r\n".encode())


def test_a_location_without_a_scheme_is_followed_to_its_host(serve, call):
    final = serve(OK)
    first = serve(redirect(f"//127.0.0.1:{final.port}/end"))
    out = call(first.url())
    assert out["status"] == 200
    assert final.received[0].startswith(b"GET /end HTTP/1.1\r\n")


def test_a_location_path_is_joined_to_the_origin_of_a_url_without_a_path(serve, call):
    # http://host:port?x=1 has no path: the redirect's /end follows the origin
    def behaviour(conn, req):
        (OK if req.startswith(b"GET /end ") else redirect("/end"))(conn, req)
    server = serve(behaviour)
    out = call(server.url("") + "?x=1")
    assert out["status"] == 200
    assert server.received[1].startswith(b"GET /end HTTP/1.1\r\n")


@pytest.mark.parametrize("location", ["next", "?page=2", f"http://user:{SECRET}@127.0.0.1/"])
def test_a_location_onboard_cannot_follow_is_a_net_error_naming_the_redirect(serve, call,
                                                                           location):
    out = call(serve(redirect(location)).url())
    assert (out["error"], out["message"]) == (
        "NetError", "127.0.0.1: redirect: location malformed")


def test_a_head_redirected_with_303_stays_a_head(serve, call):
    def behaviour(conn, req):
        (OK if req.startswith(b"HEAD /end") else redirect("/end", 303))(conn, req)
    server = serve(behaviour)
    out = call(server.url(), method="HEAD")
    assert out["status"] == 200
    assert [r.split(b" ")[0] for r in server.received] == [b"HEAD", b"HEAD"]


def test_one_deadline_bounds_the_redirects_and_the_last_reply(serve, call):
    # two hops answered after 0.75 s each, the final reply after 0.75 s more:
    # each within a 2 s timeout, not all three
    import time

    def slow(behaviour):
        def answer(conn, req):
            time.sleep(0.75)
            behaviour(conn, req)
        return answer
    final = serve(slow(OK))
    middle = serve(slow(redirect(final.url("/end"))))
    first = serve(slow(redirect(middle.url("/next"))))
    out = call(first.url(), timeout=2)
    assert out["error"] == "Timeout"
    assert out["message"] == "127.0.0.1: reply: timed out"


CARRIES = {"body": {"method": "POST", "json": {"token": SECRET}},
           "Authorization": {"headers": {"Authorization": "Bearer " + SECRET}},
           "x-access-token": {"headers": {"x-access-token": SECRET}},
           "Cookie": {"headers": {"Cookie": "session=" + SECRET}},
           "any caller header": {"headers": {"X-Device": "dev-1"}}}


@pytest.mark.parametrize("carry", sorted(CARRIES))
def test_redirect_to_another_port_is_not_followed_with_a_body_or_caller_headers(serve, call,
                                                                               carry):
    target = serve(OK)
    start = serve(redirect(target.url("/x")))
    out = call(start.url(), **CARRIES[carry])
    assert (out["error"], out["message"]) == ("NetError",
                                              "127.0.0.1: redirect: to another origin refused")
    assert target.connections == 0 and target.received == []


@pytest.mark.parametrize("status", [307, 308])
def test_redirect_to_another_host_name_same_port_is_not_followed_with_a_body(serve, call,
                                                                             status):
    # localhost is this very server, so its request log shows whether the hop was made
    def behaviour(conn, req):
        redirect(f"http://localhost:{server.port}/x", status)(conn, req)
    server = serve(behaviour)
    out = call(server.url(), method="POST", json={"token": SECRET})
    assert out["message"] == "127.0.0.1: redirect: to another origin refused"
    assert len(server.received) == 1


def test_redirect_to_another_origin_without_body_or_headers_is_followed(serve, call):
    target = serve(OK)
    out = call(serve(redirect(target.url("/x"), 308)).url())
    assert out["status"] == 200
    assert target.received[0].startswith(b"GET /x HTTP/1.1\r\n")


def test_same_origin_307_keeps_method_body_and_credentials(serve, call):
    def behaviour(conn, req):
        if req.startswith(b"POST /start "):
            redirect("/next")(conn, req)
        else:
            OK(conn, req)
    server = serve(behaviour)
    out = call(server.url("/start"), method="POST", json={"k": 1},
               headers={"Authorization": "Basic abc"})
    assert out["status"] == 200
    second = server.received[1]
    assert second.startswith(b"POST /next HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Basic abc\r\n" in second and second.endswith(b'{"k": 1}')


@pytest.mark.parametrize("headers", [{"x-access-token": "a\r\nEvil: 1"}, {"Bad Name": "v"}])
def test_header_injection_is_refused_before_connecting(serve, call, headers):
    server = serve(OK)
    out = call(server.url(), headers=headers)
    assert (out["error"], server.connections) == ("ValueError", 0)


def test_no_error_message_carries_a_secret(serve, call, pki):
    outs = [call(serve(b).url(), headers={"x-access-token": SECRET}, json={"pw": SECRET},
                 method="POST", timeout=1, ca=pki["ca"])
            for b in (silent, reply(SECRET.encode() + b"\r\n\r\n"),
                      reply(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n" + SECRET.encode()))]
    # a token read from a file with its line's end: refused, not shown
    outs.append(call(serve(OK).url(), headers={"x-access-token": SECRET + "\n"}))
    assert all("error" in o for o in outs)
    assert all(SECRET not in json.dumps(o) for o in outs)


# Strict framing -------------------------------------------------------------

@pytest.mark.parametrize("length", ["-3", "abc", "+5", "0x5", "1_0", ""])
def test_content_length_that_is_not_plain_digits_is_a_protocol_error(serve, call, length):
    out = call(serve(reply(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n"
                           "hello world".encode())).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: body: malformed")


def test_two_different_content_lengths_are_a_protocol_error(serve, call):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 11\r\n"
                           b"\r\nhello world")).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: headers: malformed")


def test_the_same_content_length_twice_is_accepted(serve, call):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n"
                           b"\r\nhello")).url())
    assert (out["status"], out["body"]) == (200, "hello")


@pytest.mark.parametrize("interim", [b"HTTP/1.1 100 Continue\r\n\r\n",
                                     b"HTTP/1.1 102 Processing\r\nX-Progress: 1\r\n\r\n"
                                     b"HTTP/1.1 100 Continue\r\n\r\n"],
                         ids=["100", "102-then-100"])
def test_1xx_replies_are_skipped_and_the_final_reply_returned(serve, call, interim):
    server = serve(reply(interim + b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"))
    out = call(server.url(), method="POST", json={})
    assert (out["status"], out["body"]) == (201, "ok")


@pytest.mark.parametrize("size", [b"0x5", b"+5", b" 5", b"-1", b""])
def test_chunk_size_that_is_not_pure_hex_is_a_protocol_error(serve, call, size):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + size + b"\r\nhello\r\n0\r\n\r\n")).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: body: malformed")


@pytest.mark.parametrize("status", [b"+200", b"0200", b"2_00", b"20", b" 200"])
def test_a_status_code_that_is_not_three_digits_is_a_protocol_error(serve, call, status):
    out = call(serve(reply(b"HTTP/1.1 " + status + b" OK\r\nContent-Length: 0\r\n\r\n")).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: status: malformed")


@pytest.mark.parametrize("version", [b"HTTP/1.1x", b"HTTP/1.", b"HTTP/1.2"])
def test_a_version_other_than_http_1_0_or_1_1_is_a_protocol_error(serve, call, version):
    out = call(serve(reply(version + b" 200 OK\r\nContent-Length: 0\r\n\r\n")).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: status: malformed")


@pytest.mark.parametrize("line", [
    b" Content-Length: 5",  # a folded line: a header of its own to a careless reader
    b"\tX-A: b",
    b"X-A: b\nContent-Length: 5",  # a bare LF
    b"X-A: b\x00c",
    b": v",
    b"Content-Length : 5",
    b"X A: b",
], ids=["folded", "folded-tab", "bare-lf", "nul", "empty-name", "space-before-colon",
        "space-in-name"])
def test_a_header_line_that_could_be_read_two_ways_is_a_protocol_error(serve, call, line):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nX-A: b\r\n" + line
                           + b"\r\nContent-Length: 10\r\n\r\nhelloEXTRA")).url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: headers: malformed")


def test_a_tab_inside_a_header_value_is_taken(serve, call):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nX-A: b\tc\r\nContent-Length: 2\r\n\r\nok"))
               .url())
    assert (out["status"], out["headers"]["x-a"], out["body"]) == (200, "b\tc", "ok")


@pytest.mark.parametrize("n, refused", [(48, False), (49, True)])
def test_a_reply_with_more_than_48_header_lines_is_refused(serve, call, n, refused):
    # 49 tiny headers fit the 4 KB head, but each costs RAM as a str pair in a dict
    lines = b"".join(b"h%d:\r\n" % i for i in range(n - 1))
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\n" + lines
                           + b"Content-Length: 2\r\n\r\nok")).url())
    if refused:
        assert (out["error"], out["message"]) == (
            "ProtocolError", "127.0.0.1: headers: malformed")
    else:
        assert (out["status"], len(out["headers"])) == (200, n)


@pytest.mark.parametrize("te", [b"Transfer-Encoding: gzip", b"Transfer-Encoding: notchunked",
                                b"Transfer-Encoding: gzip, chunked",
                                b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip"],
                         ids=["gzip", "notchunked", "gzip-chunked", "two"])
def test_a_transfer_coding_other_than_chunked_alone_is_a_protocol_error(serve, call, te):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\n" + te
                           + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")).url())
    assert out["error"] == "ProtocolError"
    assert out["message"] in ("127.0.0.1: headers: malformed", "127.0.0.1: body: malformed")


def test_chunked_in_any_case_is_decoded(serve, call):
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                           b"5\r\nhello\r\n0\r\n\r\n")).url())
    assert (out["status"], out["body"]) == (200, "hello")


@pytest.mark.parametrize("whole", [b"41\r\n", b"X: " + b"y" * 254 + b"\r\n"],
                         ids=["chunk-size-line", "trailer"])
def test_a_chunk_line_over_its_bound_is_refused_even_when_it_comes_at_once(serve, call, whole):
    # a chunk-size line over 64 bytes (here: 65 with its extension) or a trailer over 256
    if whole.startswith(b"41"):
        body = b"5;" + b"e" * 63 + b"\r\nhello\r\n0\r\n\r\n"
    else:
        body = b"5\r\nhello\r\n0\r\n" + whole + b"\r\n"
    out = call(serve(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
               .url())
    assert (out["error"], out["message"]) == ("ProtocolError", "127.0.0.1: body: malformed")


# URLs and the Response -------------------------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:abc/x", "http://127.0.0.1:0/x",
                                 "http://127.0.0.1:65536/x", "ftp://127.0.0.1/x",
                                 "http:///x", "http://127.0.0.1/a b"])
def test_a_malformed_url_is_a_value_error_naming_url_before_connecting(call, url):
    out = call(url)
    assert (out["error"], out["message"]) == ("ValueError", "url: malformed")


@pytest.mark.parametrize("tail, target", [(f"?token={SECRET}", f"/?token={SECRET}"),
                                          (f"#{SECRET}", "/"), (f"/x#{SECRET}", "/x")],
                         ids=["query", "fragment", "path-fragment"])
def test_a_query_or_fragment_right_after_the_host_is_not_taken_for_the_host(serve, call, tail,
                                                                            target):
    server = serve(OK)
    out = call(server.url("") + tail)
    assert out["status"] == 200
    assert server.received[0].startswith(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                         .encode())


@pytest.mark.parametrize("userinfo", [f"user:{SECRET}@", f"{SECRET}@"])
def test_credentials_in_a_url_are_refused_without_naming_them(serve, call, userinfo):
    server = serve(OK)
    out = call(server.url().replace("://", "://" + userinfo))
    assert (out["error"], out["message"], server.connections) == ("ValueError", "url: malformed", 0)


def test_a_url_without_a_port_uses_80_for_http_and_443_for_https(mpy, pki):
    # The behaviour is the well-known ports themselves, so they are bound here
    # (loopback only); where this user may not bind them, there is nothing to test.
    servers = []
    try:
        for port, tls in ((80, None), (443, pki["good"])):
            try:
                servers.append(Server(OK, tls, port=port))
            except OSError as e:
                pytest.skip(f"cannot listen on 127.0.0.1:{port}: {e}")
        code = """
import json
from onboard import http
print(json.dumps([http.get("http://127.0.0.1/plain", timeout=5).status_code,
                  http.get("https://127.0.0.1/tls", ca=%r, timeout=5).status_code]))
""" % pki["ca"]
        assert json.loads(mpy.run(code).lines[-1]) == [200, 200]
        assert [s.received[0].split(b"\r\n")[0] for s in servers] == [
            b"GET /plain HTTP/1.1", b"GET /tls HTTP/1.1"]
    finally:
        for s in servers:
            s.close()


def test_a_response_gives_its_text_and_a_repr_with_only_the_status(serve, mpy):
    body = ("caf\u00e9 " + SECRET[:8]).encode()
    server = serve(reply(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(body)
                         + body))
    code = """
import json
from onboard import http
r = http.post(%r, json={"k": 1}, timeout=5)
print(json.dumps({"text": r.text, "repr": repr(r)}))
""" % server.url("/r")
    out = json.loads(mpy.run(code).lines[-1])
    assert out == {"text": "caf\u00e9 " + SECRET[:8], "repr": "<Response 201>"}


def test_put_sends_a_put_with_its_json_and_returns_the_reply(serve, mpy):
    # the urequests name onboard.http offers beside get and post
    server = serve(json_reply('{"ok": true}'))
    code = """
from onboard import http
r = http.put(%r, json={"value": 1}, timeout=5)
print(r.status_code, r.json()["ok"])
""" % server.url("/asset/led")
    assert mpy.run(code).lines[-1] == "200 True"
    head, _, body = server.received[0].partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /asset/led HTTP/1.1\r\n")
    assert json.loads(body) == {"value": 1}


# Name lookup ----------------------------------------------------------------

def test_a_name_that_does_not_resolve_raises_dns_error(call):
    # a 64-character label is refused by the resolver itself: no packet leaves the host
    host = "a" * 64 + ".invalid"
    out = call(f"http://{host}/", headers={"x-access-token": SECRET})
    assert (out["error"], out["message"]) == ("DNSError", f"{host}: dns: name lookup failed")


def test_read_request_helper_reads_head_and_body():
    # the recorder the assertions above rely on
    import socket
    a, b = socket.socketpair()
    a.sendall(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    assert read_request(b).endswith(b"\r\n\r\nabc")
    a.close()
    b.close()


# What a request keeps in RAM (modules it loads) --------------------------------

LOADED = """
import sys
%(pre)s
from onboard import %(client)s
r = %(call)s
print(sorted(m for m in sys.modules if m.startswith("onboard") or m == "asyncio"))
"""


def loaded(mpy, url, client="http", pre="", **kw):
    kw.setdefault("timeout", 5)
    call = (f"__import__('asyncio').run(ahttp.arequest('GET', {url!r}, **{kw!r}))"
            if client == "ahttp" else f"http.get({url!r}, **{kw!r})")
    code = LOADED % {"pre": pre, "client": client, "call": call}
    return json.loads(mpy.run(code).lines[-1].replace("'", '"'))


def test_a_request_that_succeeds_does_not_load_the_error_classes(serve, mpy):
    assert "onboard.errors" not in loaded(mpy, serve(OK).url())


def test_the_blocking_client_loads_no_asyncio_code(serve, mpy):
    mods = loaded(mpy, serve(OK).url())
    assert {"asyncio", "onboard.net", "onboard.ahttp"}.isdisjoint(mods)


def test_arequest_does_not_load_the_blocking_client(serve, mpy):
    assert "onboard.http" not in loaded(mpy, serve(OK).url(), client="ahttp")


def test_a_reply_that_does_not_redirect_does_not_load_the_redirect_code(serve, mpy):
    assert "onboard.redirect" not in loaded(mpy, serve(OK).url())


CHUNKED = reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")


@pytest.mark.parametrize("client", ["http", "ahttp"])
def test_only_a_chunked_reply_loads_the_chunked_decoder(serve, mpy, client):
    assert ("onboard.chunked" in loaded(mpy, serve(OK).url(), client),
            "onboard.chunked" in loaded(mpy, serve(CHUNKED).url(), client)) == (False, True)


def test_an_https_request_lets_go_of_the_ca_loader_it_loaded(serve, mpy, pki):
    server = serve(OK, tls=pki["good"])
    assert "onboard.ca" not in loaded(mpy, server.url(), ca=pki["ca"])
    assert server.received[0].startswith(b"GET / HTTP/1.1\r\n")


def test_an_https_request_keeps_the_ca_loader_its_caller_had_loaded(serve, mpy, pki):
    server = serve(OK, tls=pki["good"])
    pre = "import onboard.ca"
    assert "onboard.ca" in loaded(mpy, server.url(), pre=pre, ca=pki["ca"])


def test_a_tls_context_from_net_lets_go_of_the_ca_loader_it_loaded(mpy, pki):
    out = mpy.run("""
import sys
from onboard import net
ctx = net.tls_context(%r)
print(hasattr(ctx, "wrap_socket"), "onboard.ca" in sys.modules)
""" % pki["ca"])
    assert out.lines[-1] == "True False"


def test_a_tls_context_made_beforehand_is_the_one_that_trusts_the_ca(serve, mpy, pki):
    # the runtime makes the context's large block before it loads onboard.ca
    server = serve(OK, tls=pki["good"])
    out = mpy.run(f"""
import tls
from onboard.ca import context
from onboard.http import request
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
same = context({pki["ca"]!r}, False, ctx) is ctx
print(same, request("GET", {server.url()!r}, ca=ctx).status_code)
""")
    assert out.lines[-1] == "True 200"
