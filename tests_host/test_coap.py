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
from conftest import micropython_binary
from fuzz import mutations, survive

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
        await c.start(5000)
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


def test_twenty_thousand_malformed_messages_raise_only_value_error(mpy):
    valid = _samples()
    n, bad, after = survive(mpy, _mutations(valid, 20000), "coap", "parse", "coap: ", "4m",
                            after=f'print(coap.parse(bytes.fromhex("{valid[1].hex()}")))')
    assert n == 20000 and bad > 10000
    assert after == ["(1, b'\\x01\\x02\\x03\\x04', [(11, b'oic'), (11, b'sec'), (11, b'account'), "
                     "(17, b\"'\\x10\")], b'')"]


def _raw(port, *messages):
    """Send messages on one connection; return every message received until
    the server's answers to all of them came or it closed."""
    from aiocoap.transports.tcp import _decode_message, _extract_message_size

    got, buf = [], b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join(messages))
        while len(got) < len(messages):
            try:
                data = s.recv(4096)
            except ConnectionResetError:  # closed with our bytes unread
                data = b""
            if not data:
                got.append("closed")
                break
            buf += data
            while (size := _extract_message_size(buf)) and len(buf) >= sum(size):
                got.append(_decode_message(buf[:sum(size)]))
                buf = buf[sum(size):]
    return got


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


def test_our_client_refuses_to_send_past_the_peers_max_message_size(mpy):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        got = []

        def peer():  # a CoAP peer that allows 64-byte messages, records what arrives
            conn, _ = srv.accept()
            with conn:
                conn.sendall(_csm(64))
                while data := conn.recv(4096):
                    got.append(data)

        t = threading.Thread(target=peer, daemon=True)
        t.start()
        out = mpy.run(f"""
            import asyncio
            from onboard import coap

            async def main():
                c = await coap.connect("127.0.0.1", {port}, timeout_ms=5000)
                print(c.peer_max)
                try:
                    await c.request(2, "big", b"x" * 100, timeout_ms=2000)
                except ValueError as e:
                    print(e)
                c.close()

            asyncio.run(main())
        """).lines
        t.join(10)
    assert out == ["64", "coap: too large"]
    assert b"".join(got) == bytes.fromhex("30e1220800")  # our CSM only: nothing else was sent


@pytest.mark.parametrize("sends_csm", [True, False])
def test_a_silent_peer_ends_in_timeout_not_a_hang(mpy, sends_csm):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        done = threading.Event()

        def peer():  # sends its CSM (or not), then answers nothing
            conn, _ = srv.accept()
            with conn:
                if sends_csm:
                    conn.sendall(_csm())
                done.wait(20)

        threading.Thread(target=peer, daemon=True).start()
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
