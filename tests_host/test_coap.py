"""onboard.coap under the Unix port against aiocoap (another CoAP over TCP
implementation), both roles, directly and through a relay that re-chunks
the byte stream; and its parser against 20,000 malformed messages."""

import asyncio
import select
import socket
import subprocess
import threading

import cbor2
import pytest
from aiocoap import CHANGED, CONTENT, GET, POST, Context, Message, resource
from aiocoap.optiontypes import UintOption
from conftest import MicroPython, micropython_binary
from fuzz import mutations, survive
from servers import unanswered_port

from onboard_cli.ports import free_port

# aiocoap 0.4.17 warns about its own use of a deprecated argument
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")




class Echo(resource.Resource):
    """POST: a CBOR map of what arrived; GET: a CBOR body."""

    async def render_post(self, request):
        cf = request.opt.content_format
        # (the Site routed it here by its Uri-Path: what this sees is the rest, none)
        body = {"query": list(request.opt.uri_query),
                "cf": None if cf is None else int(cf), "payload": request.payload}
        return Message(code=CHANGED, payload=cbor2.dumps(body), content_format=10000)

    async def render_get(self, request):
        return Message(code=CONTENT, payload=cbor2.dumps({"n": 7, "big": "x" * 600}),
                       content_format=10000)


class Loop:
    """An asyncio loop in a thread, for aiocoap."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=20):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def aio():
    lp = Loop()
    yield lp
    lp.stop()


@pytest.fixture(scope="module")
def aiocoap_server(aio):
    site = resource.Site()
    site.add_resource(["echo", "x"], Echo())
    port = free_port()
    ctx = aio.run(Context.create_server_context(site, bind=("127.0.0.1", port),
                                                transports=["tcpserver"]))
    yield port
    aio.run(ctx.shutdown())


@pytest.fixture(scope="module")
def aiocoap_tls_server(aio, pki_dir):
    import ssl

    site = resource.Site()
    site.add_resource(["echo", "x"], Echo())
    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sslctx.load_cert_chain(pki_dir / "server.pem", pki_dir / "server.key")
    port = free_port()
    # (aiocoap's TLS server listens on the bound port + 1, as 5684 is 5683 + 1)
    ctx = aio.run(Context.create_server_context(site, bind=("127.0.0.1", port - 1),
                                                transports=["tlsserver"], _ssl_context=sslctx))
    yield port
    try:
        aio.run(ctx.shutdown())
    except AttributeError:
        pass  # aiocoap 0.4.17 cannot name a connection whose handshake failed (refused CA test)


class Relay:
    """A TCP relay on loopback that re-chunks what passes: "split" sends
    every byte as a segment of its own, "merge" holds bytes until none came
    for a moment and sends them in one. Records each segment sent."""

    def __init__(self, target_port, mode):
        self.target, self.mode = target_port, mode
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.segments = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()
            threading.Thread(target=self._pump, args=(b, a), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mode == "split":
                    for k in range(len(data)):
                        dst.sendall(data[k:k + 1])
                    self.segments.append(len(data))
                    continue
                while select.select([src], [], [], 0.05)[0]:
                    more = src.recv(65536)
                    if not more:
                        break
                    data += more
                dst.sendall(data)
                self.segments.append(len(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.lsock.close()


CLIENT = """
import asyncio, sys
from onboard import cbor, coap

async def main(port, c=None):
    c = c or await coap.connect("127.0.0.1", port, timeout_ms=5000)
    print("peer_max", c.peer_max)
    code, opts, payload = await c.request(2, "/echo/x", cbor.dumps({"di": "d1"}),
                                          query=("a=1", "b=2"), content_format=10000)
    print("post", hex(code), coap.opt(opts, 12), repr(cbor.loads(payload)))
    # several requests in flight at once (the relay's "merge" puts them in one segment)
    res = await asyncio.gather(*[c.request(1, "echo/x", accept=10000) for _ in range(4)])
    print("gets", [hex(r[0]) for r in res], [cbor.loads(r[2])["n"] for r in res])
    await c.request(0xE2, "", timeout_ms=3000)  # a Ping
    print("pong")
    code, opts, payload = await c.request(1, "/nothing")
    print("missing", hex(code))
    c.close()

async def tls(port, ca):
    from onboard.net import tls_context
    try:
        c = await coap.connect("127.0.0.1", port, ssl=tls_context(ca), timeout_ms=5000)
    except Exception as e:
        print("refused", type(e).__name__, e)
        return
    await main(port, c)

if len(sys.argv) > 2:
    asyncio.run(tls(int(sys.argv[1]), sys.argv[2]))
else:
    asyncio.run(main(int(sys.argv[1])))
"""


REST = ["gets ['0x45', '0x45', '0x45', '0x45'] [7, 7, 7, 7]", "pong", "missing 0x84"]


def _client(mpy, port, *ca):
    (mpy.workdir / "client.py").write_text(CLIENT)
    return mpy.run(file=mpy.workdir / "client.py", args=(port, *ca), timeout=30).lines


def test_our_client_talks_to_aiocoaps_tcp_server(mpy, aiocoap_server):
    lines = _client(mpy, aiocoap_server)
    assert lines[0] == "peer_max 1048576"  # aiocoap's CSM read
    code, cf, body = lines[1].split(" ", 3)[1:]
    assert (code, cf) == ("0x44", "b\"'\\x10\"")  # 2.04, application/vnd.ocf+cbor
    # what the server saw, as MicroPython printed it
    assert eval(body) == {"query": ["a=1", "b=2"], "cf": 10000,
                          "payload": cbor2.dumps({"di": "d1"})}
    assert lines[2:] == REST


def test_our_client_talks_to_aiocoaps_tls_server_trusting_its_ca(mpy, aiocoap_tls_server,
                                                                  pki_dir):
    lines = _client(mpy, aiocoap_tls_server, pki_dir / "ca.pem")
    assert lines[1].startswith("post 0x44 ")
    assert lines[2:] == REST


def test_our_client_refuses_a_tls_server_of_another_ca(mpy, aiocoap_tls_server, tmp_path):
    from cloudsim.pki import CA

    (tmp_path / "other.pem").write_bytes(CA("another CA").pem())
    out = "\n".join(_client(mpy, aiocoap_tls_server, tmp_path / "other.pem"))
    # (mbedTLS's ValueError: onboard.errors.wrap(e, host, "tls") makes it a TLSError)
    assert out.startswith("refused ValueError") and "not correctly signed by the trusted CA" in out


@pytest.mark.parametrize("mode", ["split", "merge"])
def test_our_client_through_a_rechunking_relay(mpy, aiocoap_server, mode):
    relay = Relay(aiocoap_server, mode)
    try:
        lines = _client(mpy, relay.port)
    finally:
        relay.close()
    assert lines[2:] == REST
    if mode == "split":
        assert max(relay.segments) > 600  # the 600-byte body went out byte by byte
    else:
        assert max(relay.segments) > 2 * 700  # several responses in one segment


SERVER = """
import asyncio, sys
from onboard import cbor, coap

def path(opts):
    return "/".join(v.decode() for n, v in opts if n == 11)

def handler(code, opts, payload):
    if path(opts) == "fail":
        raise RuntimeError("handler bug")
    body = {"code": code, "path": path(opts),
            "query": [v.decode() for n, v in opts if n == 15],
            "cf": coap.opt(opts, 12), "payload": payload}
    return 0x45, ((12, 10000),), cbor.dumps(body)

async def serve(r, w):
    c = coap.Conn(r, w, handler)
    try:
        # (each read waits up to a minute: longer than any test's peer waits,
        # so what the server ends, it ends for a reason other than the time)
        await c.start(60000)
    except Exception as e:
        print("start failed", repr(e))

async def main(port):
    ctx = None
    if len(sys.argv) > 2:  # coaps+tcp: the server's certificate and key (DER files)
        import tls
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read())
    await asyncio.start_server(serve, "127.0.0.1", port, ssl=ctx)
    print("ready")
    await asyncio.sleep(30)

asyncio.run(main(int(sys.argv[1])))
"""


def _start_our_server(mpy, *tls_files):
    (mpy.workdir / "server.py").write_text(SERVER)
    port = free_port()
    proc = subprocess.Popen([micropython_binary(), str(mpy.workdir / "server.py"),
                             str(port), *map(str, tls_files)], stdout=subprocess.PIPE, text=True,
                            env=mpy.env(), cwd=mpy.workdir)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def our_server(mpy):
    yield from _start_our_server(mpy)


@pytest.fixture
def our_tls_server(mpy, pki_dir):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization as ser

    # DER, as MicroPython's mbedTLS reads a key
    cert = x509.load_pem_x509_certificate((pki_dir / "server.pem").read_bytes())
    key = ser.load_pem_private_key((pki_dir / "server.key").read_bytes(), None)
    (mpy.workdir / "server.der").write_bytes(cert.public_bytes(ser.Encoding.DER))
    (mpy.workdir / "server.key.der").write_bytes(key.private_bytes(
        ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    yield from _start_our_server(mpy, mpy.workdir / "server.der", mpy.workdir / "server.key.der")


async def _aiocoap_requests(port, ca=None):
    ctx = await Context.create_client_context(transports=["tlsclient" if ca else "tcpclient"])
    if ca:
        ctx.client_credentials.load_from_dict({f"coaps+tcp://127.0.0.1:{port}/*": {"tlscert": {
            "certfile": str(ca)}}})
    try:
        base = f"coap{'s' if ca else ''}+tcp://127.0.0.1:{port}"
        post = await ctx.request(Message(code=POST, uri=base + "/oic/rd?a=1",
                                         payload=cbor2.dumps({"x": 1}),
                                         content_format=10000)).response
        gets = await asyncio.gather(*[ctx.request(Message(code=GET, uri=base + f"/r/{k}")).response
                                      for k in range(4)])
        fail = await ctx.request(Message(code=GET, uri=base + "/fail")).response
        return post, gets, fail
    finally:
        await ctx.shutdown()


def _check_server_answers(post, gets, fail):
    assert post.code == CONTENT
    assert cbor2.loads(post.payload) == {"code": 2, "path": "oic/rd", "query": ["a=1"],
                                          "cf": b"\x27\x10", "payload": cbor2.dumps({"x": 1})}
    assert [cbor2.loads(g.payload)["path"] for g in gets] == ["r/0", "r/1", "r/2", "r/3"]
    assert str(fail.code).startswith("5.00")


def test_aiocoaps_client_talks_to_our_server_role(aio, our_server):
    _check_server_answers(*aio.run(_aiocoap_requests(our_server)))


def test_aiocoaps_tls_client_talks_to_our_server_role_over_tls(aio, our_tls_server, pki_dir):
    _check_server_answers(*aio.run(_aiocoap_requests(our_tls_server, pki_dir / "ca.pem")))


@pytest.mark.parametrize("mode", ["split", "merge"])
def test_aiocoaps_client_to_our_server_through_a_rechunking_relay(aio, our_server, mode):
    relay = Relay(our_server, mode)
    try:
        _check_server_answers(*aio.run(_aiocoap_requests(relay.port)))
    finally:
        relay.close()
    assert relay.segments


def _samples():
    """Valid messages as aiocoap writes them on TCP."""
    from aiocoap.numbers.codes import Code
    from aiocoap.transports.tcp import _serialize

    csm = Message(code=Code.CSM)
    csm.opt.add_option(UintOption(2, 1152))
    get = Message(code=GET, uri_path=("oic", "sec", "account"), accept=10000,
                  token=b"\x01\x02\x03\x04")
    post = Message(code=POST, uri_path=("oic", "rd"), uri_query=("a=1",), content_format=10000,
                   payload=cbor2.dumps({"di": "x" * 300}), token=b"\x09")
    return [_serialize(m) for m in (csm, get, post)]


def _mutations(valid, n, seed=8323):
    return mutations(valid, n, seed, 48)


def test_aiocoaps_messages_parse_and_ours_encode_the_same_bytes(mpy):
    hexes = [m.hex() for m in _samples()]
    out = mpy.run(f"""
        from onboard import coap
        for h in {hexes!r}:
            code, token, opts, payload = coap.parse(bytes.fromhex(h))
            print(code, token.hex(), opts, len(payload))
            print(coap.encode(code, token, opts, payload).hex())
    """).lines
    assert out[0] == "225  [(2, b'\\x04\\x80')] 0"  # CSM, Max-Message-Size 1152
    assert out[2] == ("1 01020304 [(11, b'oic'), (11, b'sec'), (11, b'account'), "
                      "(17, b\"'\\x10\")] 0")
    assert out[4].startswith("2 09 [(11, b'oic'), (11, b'rd'), (12, b\"'\\x10\"), (15, b'a=1')] 3")
    assert [out[1], out[3], out[5]] == hexes


def _boundary_messages():
    """Messages whose length, option deltas and option lengths sit on each
    side of RFC 8323's extended forms (13, 269 and, for a length, 65805), as
    aiocoap writes them."""
    from aiocoap.optiontypes import OpaqueOption
    from aiocoap.transports.tcp import _serialize

    edges = (12, 13, 14, 268, 269, 270)
    out = []
    for n in edges + (65804, 65805, 65806):  # options, marker and payload: n bytes
        out.append(Message(code=POST, payload=b"p" * (n - 1)))
    for d in edges + (2049, 2053):  # an option n numbers after the last (2049, 2053: OCF's)
        m = Message(code=GET, uri_path=("a",))
        m.opt.add_option(OpaqueOption(11 + d, b"v"))
        out.append(m)
    for n in edges:  # an option value of n bytes
        m = Message(code=GET)
        m.opt.add_option(OpaqueOption(2053, b"v" * n))
        out.append(m)
    for m in out:
        m.token = b"\x07"
    return [_serialize(m) for m in out]


def test_at_each_extended_form_boundary_ours_parse_and_encode_aiocoaps_bytes(mpy):
    hexes = [m.hex() for m in _boundary_messages()]
    (mpy.workdir / "in.txt").write_text("\n".join(hexes) + "\n")
    out = mpy.run("""
        from onboard import coap
        for line in open("in.txt"):
            code, token, opts, payload = coap.parse(bytes.fromhex(line.strip()), 1 << 20)
            print(coap.encode(code, token, opts, payload).hex())
    """, heapsize="4m").lines
    assert out == hexes


def test_text_and_number_options_are_sent_as_aiocoap_writes_them(mpy):
    # a text option as its UTF-8 bytes (its length counted in bytes), a uint
    # in as few bytes as it takes (0 in none)
    from aiocoap.transports.tcp import _serialize

    m = Message(code=GET, uri_path=("café", "ü"), uri_query=("n=é",), observe=0, accept=10000)
    m.token = b"\x07"
    out = mpy.run("""
        from onboard import coap
        print(coap.encode(1, b"\\x07", [(6, 0), (11, "café"), (11, "ü"), (15, "n=é"),
                                        (17, 10000)]).hex())
    """).lines
    assert out == [_serialize(m).hex()]


def test_options_the_wire_cannot_carry_are_refused_as_bad(mpy):
    # out of order, a number or length past the extended forms, a uint past
    # 4 bytes or below 0
    out = mpy.run("""
        from onboard import coap
        for opts in ([(12, 1), (11, "a")], [(65805, b"v")], [(11, b"v" * 65805)],
                     [(6, 1 << 32)], [(6, -1)]):
            try:
                print(coap.encode(1, b"", opts).hex())
            except ValueError as e:
                print(e)
    """, heapsize="1m").lines
    assert out == ["coap: bad option"] * 5


PARSED = {
    # whole messages (hex) -> what parse() says; max_size 4 where given after "/"
    "": "coap: truncated",                       # nothing
    "d0": "coap: truncated",                     # a 1-byte extended length, cut off
    "e000": "coap: truncated",                   # a 2-byte one, cut off
    "d000": "coap: truncated",                   # an extended length and no code
    "1001": "coap: bad length",                  # says 1 byte more than there is
    "000101": "coap: bad length",                # a byte more than it says
    "0901010203040506070809": "coap: bad length",  # a 9-byte token, length right
    "1001f0": "coap: bad option",                # delta nibble 15 on an option
    "1001ff": "coap: bad option",                # a payload marker and no payload
    "1001d0": "coap: bad option",                # its delta extension cut off
    "20011501": "coap: truncated",               # an option value past the end
    "50014142434445/4": "coap: too large",       # 5 bytes of options over max_size 4
}


def _parsed(mpy, cases):
    return mpy.run(f"""
        from onboard import coap
        for case in {cases!r}:
            h, _, most = case.partition("/")
            try:
                print(coap.parse(bytes.fromhex(h), *([int(most)] if most else [])))
            except ValueError as e:
                print(e)
    """, heapsize="1m").lines


def test_a_malformed_message_is_refused_saying_why(mpy):
    assert dict(zip(PARSED, _parsed(mpy, list(PARSED)), strict=True)) == PARSED


def test_messages_at_the_edges_of_what_is_taken_parse(mpy):
    body = "ff" + "78" * 65535  # 65536 bytes of marker and payload: the default max_size
    out = _parsed(mpy, [
        "40011141ff42/4",                # options and payload of exactly max_size
        "0801" + "0102030405060708",     # an 8-byte token
        "2001d00f",                      # the last option's delta extension ends the message
        "e0fef3" + "01" + body,          # 65536 bytes by the default
        "e0fef4" + "01" + body + "78",   # 65537: one past it
    ])
    assert out[:3] == ["(1, b'', [(1, b'A')], b'B')",
                       "(1, b'\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08', [], b'')",
                       "(1, b'', [(28, b'')], b'')"]
    assert out[3].startswith("(1, b'', [], b'xxx") and out[4] == "coap: too large"


def test_twenty_thousand_malformed_messages_raise_only_value_error(mpy):
    valid = _samples()
    n, bad, after = survive(mpy, _mutations(valid, 20000), "coap", "parse", "coap: ", "4m",
                            after=f'print(coap.parse(bytes.fromhex("{valid[1].hex()}")))')
    assert n == 20000 and bad > 10000
    assert after == ["(1, b'\\x01\\x02\\x03\\x04', [(11, b'oic'), (11, b'sec'), (11, b'account'), "
                     "(17, b\"'\\x10\")], b'')"]


def _messages(conn, n):
    """The first n messages that arrive on conn, as aiocoap reads them, each
    given as soon as it is whole; fewer when the other end closes first."""
    from aiocoap.transports.tcp import _decode_message, _extract_message_size

    buf = b""
    while n:
        try:
            data = conn.recv(4096)
        except ConnectionResetError:  # closed with our bytes unread
            data = b""
        if not data:
            return
        buf += data
        while n and (size := _extract_message_size(buf)) and len(buf) >= sum(size):
            yield _decode_message(buf[:sum(size)])
            buf, n = buf[sum(size):], n - 1


def _raw(port, *messages):
    """Send messages on one connection; return every message received until
    the server's answers to all of them came or it closed ("closed")."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join(messages))
        got = list(_messages(s, len(messages)))
    return got + ["closed"] * (len(got) < len(messages))


def _csm(max_size=1152):
    from aiocoap.numbers.codes import Code
    from aiocoap.transports.tcp import _serialize

    m = Message(code=Code.CSM)
    m.opt.add_option(UintOption(2, max_size))
    return _serialize(m)


def test_our_server_answers_a_ping_with_a_pong_on_its_token(our_server):
    from aiocoap.numbers.codes import Code
    from aiocoap.transports.tcp import _serialize

    got = _raw(our_server, _csm(), _serialize(Message(code=Code.PING, token=b"\x42\x43")))
    assert [str(m.code) for m in got] == ["7.01 Csm", "7.03 Pong"]
    assert int.from_bytes(got[0].opt.get_option(2)[0].value, "big") == 2048  # our Max-Message-Size
    assert got[1].token == b"\x42\x43"


def test_our_server_closes_on_a_message_over_its_max_size(our_server):
    from aiocoap.transports.tcp import _serialize

    big = _serialize(Message(code=POST, uri_path=("x",), payload=b"y" * 3000, token=b"\x01"))
    assert _raw(our_server, _csm(1 << 20), big)[1:] == ["closed"]


def test_our_server_closes_on_the_header_of_a_message_over_its_max_size(our_server):
    # its length alone refuses it: nothing of the rest is waited for (or held)
    from aiocoap.transports.tcp import _serialize

    big = _serialize(Message(code=POST, uri_path=("x",), payload=b"y" * 30000, token=b"\x01"))
    assert big[0] >> 4 == 14  # (its length in the two bytes after the first)
    assert _raw(our_server, _csm(1 << 20), big[:5])[1:] == ["closed"]


def _peer(behave):
    """A listening socket whose one connection is handed to behave(conn) in a
    thread: (port, the thread)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        with srv:
            conn, _ = srv.accept()
            with conn:
                behave(conn)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv.getsockname()[1], t


def test_our_client_sends_up_to_the_peers_max_message_size_and_nothing_past_it(mpy):
    got = []

    def allows_64(conn):  # a CoAP peer that allows 64-byte messages, records what arrives
        conn.sendall(_csm(64))
        while data := conn.recv(4096):
            got.append(data)

    port, t = _peer(allows_64)
    out = mpy.run(f"""
        import asyncio
        from onboard import coap

        async def main():
            c = await coap.connect("127.0.0.1", {port}, timeout_ms=5000)
            print(c.peer_max)
            for n in (59, 60):  # a 64-byte message, then a 65-byte one
                try:
                    await c.send(2, b"\\x01", (), b"x" * n)
                    print("sent", n)
                except ValueError as e:
                    print(e)
            try:
                await c.request(2, "big", b"x" * 100, timeout_ms=2000)
            except ValueError as e:
                print(e)
            c.close()

        asyncio.run(main())
    """).lines
    t.join(10)
    assert out == ["64", "sent 59", "coap: too large", "coap: too large"]
    # our CSM and the 64-byte message: nothing else was sent
    assert b"".join(got) == bytes.fromhex("30e1220800" + "d12f0201ff") + b"x" * 59


def test_a_request_to_a_connection_without_a_handler_is_answered_4_04(mpy):
    from aiocoap.numbers.codes import Code
    from aiocoap.transports.tcp import _serialize

    got = []

    def asks(conn):  # a GET; our CSM, its answer and a Ping come back (the Ping answered)
        conn.sendall(_csm() + _serialize(Message(code=GET, uri_path=("x",), token=b"\x05")))
        for m in _messages(conn, 3):
            got.append(m)
            if m.code == Code.PING:
                conn.sendall(_serialize(Message(code=Code.PONG, token=m.token)))
        while conn.recv(4096):
            pass

    port, t = _peer(asks)
    mpy.run(f"""
        import asyncio
        from onboard import coap

        async def main():
            c = await coap.connect("127.0.0.1", {port}, timeout_ms=5000)
            await c.request(0xE2, "", timeout_ms=5000)
            c.close()

        asyncio.run(main())
    """, timeout=30)
    t.join(10)
    assert [(str(m.code), m.token) for m in got if m.code.is_response()] == [
        ("4.04 Not Found", b"\x05")]


def test_an_observe_request_carries_observe_and_answered_requests_leave_nothing_behind(mpy):
    from aiocoap.numbers.codes import Code
    from aiocoap.transports.tcp import _serialize

    got = []

    def answers(conn):  # our CSM, the GET with Observe 0 and a Ping: each answered
        conn.sendall(_csm())
        for m in _messages(conn, 3):
            got.append(m)
            code = Code.PONG if m.code == Code.PING else CONTENT
            if m.code != Code.CSM:
                conn.sendall(_serialize(Message(code=code, token=m.token)))
        while conn.recv(4096):
            pass

    port, t = _peer(answers)
    out = mpy.run(f"""
        import asyncio
        from onboard import coap

        async def main():
            c = await coap.connect("127.0.0.1", {port}, timeout_ms=5000)
            print(hex((await c.request(1, "oic/d", observe=0, timeout_ms=5000))[0]))
            await c.request(0xE2, "", timeout_ms=5000)
            print("waiting for", len(c.waits))
            c.close()

        asyncio.run(main())
    """, timeout=30).lines
    t.join(10)
    assert out == ["0x45", "waiting for 0"]
    assert got[1].opt.observe == 0 and got[1].opt.uri_path == ("oic", "d")


CONNECT = """
import asyncio
from onboard import coap
from onboard.net import tls_context

async def main():
    try:
        await coap.connect("127.0.0.1", %d, timeout_ms=%d%s)
        print("started")
    except Exception as e:
        print(type(e).__name__, e)

asyncio.run(main())
"""


def test_a_peer_that_closes_before_its_csm_fails_the_start_as_closed(mpy):
    port, t = _peer(lambda conn: None)  # accepts, then closes
    out = mpy.run(CONNECT % (port, 5000, "")).lines
    t.join(10)
    assert out == ["ProtocolError coap: closed"]


@pytest.mark.parametrize("ssl,said", [
    ("None", "Timeout coap: timed out"),  # the peer sends no CSM
    # a plain CoAP peer on the port TLS was asked of: the handshake fails,
    # and MicroPython's TLS socket then lets go of its plain socket unclosed
    ("tls_context(None, True)", "OSError")], ids=["timeout", "tls"])
def test_a_failed_start_closes_its_connection_at_once(tmp_path, ssl, said):
    # the device goes on running after the failure (it waits on its stdin,
    # the collector off): the peer must see the connection closed while it does
    seen = {}

    def peer(conn):  # sends no CSM (or one, for the client's hello), then
        conn.settimeout(60)  # waits for the other end to close
        if ssl != "None":
            conn.recv(4096)
            conn.sendall(_csm())
        while conn.recv(4096):
            pass
        seen["alive"] = proc.poll() is None

    port, t = _peer(peer)
    script = tmp_path / "start.py"
    script.write_text(f"""
import asyncio, gc, sys
from onboard import coap
from onboard.net import tls_context
gc.disable()

async def main():
    try:
        await coap.connect("127.0.0.1", {port}, ssl={ssl}, timeout_ms=300)
    except Exception as e:
        print(type(e).__name__, e)

asyncio.run(main())
sys.stdin.readline()
""")
    proc = subprocess.Popen([micropython_binary(), str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=MicroPython(tmp_path).env())
    try:
        assert proc.stdout.readline().strip().startswith(said)
        t.join(60)
        assert seen == {"alive": True}
    finally:
        proc.communicate("\n", timeout=30)


def test_a_peer_that_never_answers_the_connect_ends_in_timeout_not_a_hang(mpy):
    # the TCP connect is bounded by the same timeout as the rest
    with unanswered_port() as port:
        out = mpy.run(CONNECT % (port, 500, ""), timeout=30).lines
    assert out == ["Timeout coap: timed out"]


def test_a_tls_peer_that_never_answers_the_hello_ends_in_timeout_not_a_hang(mpy):
    # the handshake runs in the start's first send, bounded as the rest
    done = threading.Event()
    port, _ = _peer(lambda conn: done.wait(20))  # reads nothing, sends nothing
    try:
        out = mpy.run(CONNECT % (port, 500, ", ssl=tls_context(None, True)"), timeout=30).lines
    finally:
        done.set()
    assert out == ["Timeout coap: timed out"]


@pytest.mark.parametrize("sends_csm", [True, False])
def test_a_silent_peer_ends_in_timeout_not_a_hang(mpy, sends_csm):
    done = threading.Event()

    def silent(conn):  # sends its CSM (or not), then answers nothing
        if sends_csm:
            conn.sendall(_csm())
        done.wait(20)

    port, _ = _peer(silent)
    try:
        out = mpy.run(f"""
            import asyncio
            from onboard import coap

            async def main():
                try:
                    c = await coap.connect("127.0.0.1", {port}, timeout_ms=500)
                    print("connected")
                    await c.request(1, "x", timeout_ms=500)
                except Exception as e:
                    print(type(e).__name__, e)

            asyncio.run(main())
        """).lines
    finally:
        done.set()
    assert out == (["connected"] if sends_csm else []) + ["Timeout coap: timed out"]
