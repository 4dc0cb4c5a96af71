"""plgd (onboard.clouds.plgd), what the gateway and the portal see of the
device beyond test_plgd.py: the setup form's fields, the content format of
each request, the sign-in lifetime the device keeps to (expiresin), the wait
after a 5.03 (CoAP has no Retry-After), the connection a failed session
leaves, and a restart with neither code nor tokens; then the gateway alone
(aiocoap's client as the device) refusing what plgd hub refuses."""

import contextlib
import re
import socket
import threading
import uuid

import pytest
from servers import Blackhole
from test_plgd import (
    device_id,
    events,
    fields,
    onboard_code,
    online,
    plgd_device,
    refresh_refused,
    requests,
)
from test_portal import get, port_of
from test_profiles import admin, api, configure

from cloudsim.coapgw import USER

PING = 0xE2  # CoAP over TCP's 7.02 (RFC 8323)


def _frame(buf):
    """(code, size) of the whole CoAP over TCP message buf starts with, or None."""
    if not buf:
        return None
    ln, tkl = buf[0] >> 4, buf[0] & 15
    ext = (0, 1, 2, 4)[max(ln - 12, 0)]
    if len(buf) < 2 + ext:
        return None
    if ln > 12:
        ln = int.from_bytes(buf[1:1 + ext], "big") + (13, 269, 65805)[ln - 13]
    size = 2 + ext + tkl + ln
    return (buf[1 + ext], size) if len(buf) >= size else None


class Wire(Blackhole):
    """test_plgd's relay to the gateway's coap+tcp port (never silent here)
    reading the device's side as CoAP messages: sent = [(connection, code)] in
    order, closed = the connections the device closed."""

    def __init__(self, port):
        self.sent, self.closed, self.bufs = [], set(), {}
        self.changed = threading.Condition()
        super().__init__(port)

    def _pump(self, src, dst):
        if src.getsockname()[1] != self.port:  # (the gateway's side)
            return super()._pump(src, dst)
        n = len(self.bufs) + 1
        self.bufs[n] = b""
        recv = src.recv

        def tap(size):
            data = recv(size)
            self.bufs[n] += data
            while frame := _frame(self.bufs[n]):
                self.bufs[n] = self.bufs[n][frame[1]:]
                with self.changed:
                    self.sent.append((n, frame[0]))
                    self.changed.notify_all()
            return data
        try:
            super()._pump(_Tapped(src, tap), dst)
        finally:
            with self.changed:
                self.closed.add(n)
                self.changed.notify_all()

    def wait(self, wanted, timeout=20):
        with self.changed:
            return self.changed.wait_for(lambda: wanted(self), timeout)


class _Tapped:
    """A socket whose recv is tap (the rest as the socket's)."""

    def __init__(self, sock, tap):
        self.sock, self.recv = sock, tap

    def __getattr__(self, name):
        return getattr(self.sock, name)


@contextlib.contextmanager
def wired(sim):
    wire = Wire(sim.gateway.port)
    try:
        yield wire
    finally:
        wire.close()


def wired_online(device, tmp_path, sim, wire, **config):
    d = plgd_device(device, tmp_path, sim, **config)
    configure(d, **{**fields(sim), "cis": f"coap+tcp://127.0.0.1:{wire.port}"})
    d.wait_state("RUNNING")
    return d


@contextlib.contextmanager
def sign_in_lifetime(gw, expiresin, times=None):
    """The gateway's sign-in replies carry this expiresin (None: none), for the
    first `times` sign-ins (None: all)."""
    real = gw.session
    left = [times]

    def session(doc, request, tls):
        reply = real(doc, request, tls)
        if doc.get("login") is True and left[0] != 0:
            left[0] = None if left[0] is None else left[0] - 1
            reply = {k: v for k, v in reply.items() if k != "expiresin"}
            if expiresin is not None:
                reply["expiresin"] = expiresin
        return reply
    gw.session = session
    try:
        yield
    finally:
        del gw.session


@contextlib.contextmanager
def answered_once(gw, path, status, body):
    """The gateway's next request on path is answered with this status
    (503 -> 5.03) and body (as CBOR), whatever it asked."""
    import cbor2
    from aiocoap import Message

    from cloudsim.coapgw import OCF_CBOR, coap_code

    real, left = gw.handle, [1]

    async def handle(p, tls, request):
        if p == path and left[0]:
            left[0] = 0
            return Message(code=coap_code(status), payload=cbor2.dumps(body),
                           content_format=OCF_CBOR)
        return await real(p, tls, request)
    gw.handle = handle
    try:
        yield
    finally:
        del gw.handle


@contextlib.contextmanager
def requests_seen(gw):
    """[(path, method, request)] of each request reaching the gateway meanwhile."""
    real, seen = gw.handle, []

    async def handle(path, tls, request):
        seen.append((path, request.code.name, request))
        return await real(path, tls, request)
    gw.handle = handle
    try:
        yield seen
    finally:
        del gw.handle


def test_the_setup_form_masks_the_authorization_code_and_only_it(device, tmp_path, cloudsim):
    d = plgd_device(device, tmp_path, cloudsim)
    status, _, body = get(port_of(d.wait_state("WAIT_CONFIG")), "/")
    assert status == 200
    types = dict(re.findall(rb'<input name="(\w+)" type="(\w+)"', body))
    assert {k: types[k] for k in (b"apn", b"cis", b"sid", b"at")} == {
        b"apn": b"text", b"cis": b"text", b"sid": b"text", b"at": b"password"}


def test_every_request_to_the_gateway_is_cbor_by_its_content_format_and_accept(
        device, tmp_path, cloudsim):
    with requests_seen(cloudsim.gateway) as seen:
        d = online(device, tmp_path, cloudsim)
        di = device_id(cloudsim, d)
    mine = [(path, r) for path, _, r in seen]  # (this device's: the only one meanwhile)
    assert {p for p, _ in mine} >= {"/oic/sec/account", "/oic/sec/session", "/oic/rd"}
    assert requests(cloudsim, di)[:3] == ["signup", "signin", "publish"]
    assert [(p, r.opt.content_format, r.opt.accept) for p, r in mine] == [
        (p, 10000, 10000) for p, _ in mine]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (aiocoap's answer to a Ping)
@pytest.mark.parametrize("expiresin", [-1, 0, None], ids=["-1", "0", "none"])
def test_a_sign_in_that_does_not_expire_keeps_the_session_without_a_refresh(
        device, tmp_path, cloudsim, expiresin):
    with wired(cloudsim) as wire, sign_in_lifetime(cloudsim.gateway, expiresin):
        d = wired_online(device, tmp_path, cloudsim, wire, keepalive_s=1)
        di = device_id(cloudsim, d)
        # the session's loop Pings (after 1 s): it kept the session this long
        assert wire.wait(lambda w: PING in [code for _, code in w.sent]), wire.sent
    assert requests(cloudsim, di) == ["signup", "signin", "publish"]


def test_a_sign_in_for_one_second_is_refreshed_no_sooner_than_that_second(
        device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    with sign_in_lifetime(gw, 1, times=1):  # (no margin under 20 s)
        d = online(device, tmp_path, cloudsim)
        di = device_id(cloudsim, d)
        assert gw.wait_event(di, "refresh"), events(cloudsim, di)
    when = {}
    for t, e, who in list(gw.events):
        if who == di:
            when.setdefault(e, t)
    # by the gateway's monotonic clock, the same as the device's ticks (whole ms)
    assert when["refresh"] - when["signin"] >= 1 - 0.002


def test_a_5_03_on_sign_in_is_retried_on_the_devices_own_backoff(device, tmp_path, cloudsim):
    # CoAP carries no Retry-After: the wait is the backoff alone (here at most 0.5 s)
    d = online(device, tmp_path, cloudsim, backoff={"base": 0.2, "cap": 0.5})
    di = device_id(cloudsim, d)
    cloudsim.faults.add({"path": "/oic/sec/session", "method": "POST", "kind": "status",
                         "status": 503})
    assert cloudsim.gateway.kick(di)
    waits = []  # each retry's wait, until the device is back (lost link, then the 5.03)
    d.wait_for(lambda e: waits.append(e["retry_in"]) if "retry_in" in e else
               e["state"] == "RUNNING", "RUNNING again")
    assert len(waits) >= 2 and max(waits) <= 0.5, waits


def test_a_session_that_fails_leaves_its_connection_and_the_retry_comes_on_a_new_one(
        device, tmp_path, cloudsim):
    with wired(cloudsim) as wire:
        d = wired_online(device, tmp_path, cloudsim, wire)
        di = device_id(cloudsim, d)
        cloudsim.faults.add({"path": "/oic/sec/session", "method": "POST", "kind": "status",
                             "status": 503})
        assert cloudsim.gateway.kick(di)  # connection 1 ends; on 2 the sign-in gets 5.03
        d.wait_for(lambda e: e["last_error"] == 702 and "retry_in" in e, "a retry")
        d.wait_state("RUNNING")
        assert wire.wait(lambda w: 2 in w.closed), wire.sent  # closed by the device
        assert {n for n, _ in wire.sent} == {1, 2, 3}


def test_a_device_restarted_after_a_703_asks_for_setup_with_700_without_the_gateway(
        device, tmp_path, cloudsim):
    d, di, _ = refresh_refused(device, tmp_path, cloudsim)  # no code, no tokens left
    d.stop()
    seen = events(cloudsim, di)
    again = device(same_as=d, config=d.config)
    again.wait_state("WAIT_CONFIG", last_error=700)
    assert again.store()["state"]["last_error"] == 700
    assert events(cloudsim, di) == seen


@pytest.mark.parametrize("apn,named", [("", "plgd"), ("auth0", "auth0")], ids=["none", "given"])
def test_the_sign_up_names_the_authorization_provider_plgd_when_none_is_set(
        device, tmp_path, cloudsim, apn, named):
    # (the gateway refuses a provider it does not serve, auth0: its first sign-up is the one)
    gw, docs, came = cloudsim.gateway, [], threading.Event()

    def seen(path, doc):
        if path == "/oic/sec/account":
            docs.append(doc)
            came.set()
    gw.on_request = seen
    try:
        d = plgd_device(device, tmp_path, cloudsim)
        configure(d, **{**fields(cloudsim), "apn": apn})
        assert came.wait(20)
    finally:
        gw.on_request = None
    assert docs[0]["authprovider"] == named


def test_a_refresh_answered_5_03_with_a_map_is_transient_and_no_pair_is_taken_from_it(
        device, tmp_path, cloudsim):
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    with answered_once(cloudsim.gateway, "/oic/sec/tokenrefresh", 503,
                       {"accesstoken": "a", "refreshtoken": "r", "expiresin": 60}):
        assert cloudsim.gateway.kick(di)
        d.wait_for(lambda e: e["last_error"] == 702 and "retry_in" in e, "a retry after 702")
        d.wait_state("RUNNING")  # with the pair it kept
    cloud = d.store()["cloud"]
    assert (cloud["access_token"], cloud["refresh_token"]) in cloudsim.clouds["plgd"].pairs
    assert events(cloudsim, di).count("signup") == 1 and cloud["cps"] == "registered"


def test_a_cis_whose_port_is_beyond_65535_is_rejected(mpy_in):
    run = mpy_in("plgd-port").run(
        "from onboard.ocf import write_conf\n"
        "try:\n"
        "    write_conf({'cis': 'coap+tcp://h:99999', 'at': 'a', 'sid': 's'})\n"
        "    print('accepted')\n"
        "except ValueError as e:\n"
        "    print(e)\n")
    assert run.lines[-1].startswith("cis: ")


# -- the gateway alone (aiocoap's client as the device) -----------------------------------

# aiocoap's own, as its client shuts down: a request of the gateway's arriving
# meanwhile (it reads /oic/res of a device that signed in) is never rendered
UNRENDERED = "ignore:coroutine 'Context._render_to_pipe' was never awaited:RuntimeWarning"


def ask(sim, *requests):
    """The gateway's answers, each (code as text, CBOR body or None), to
    requests (method, path, CBOR body) made in turn on one new coap+tcp
    connection."""
    import asyncio

    import cbor2
    from aiocoap import Context, Message

    async def go():
        ctx = await Context.create_client_context(transports=["tcpclient"])
        out = []
        try:
            for method, path, body in requests:
                msg = Message(code=method, uri=f"coap+tcp://127.0.0.1:{sim.gateway.port}{path}",
                              content_format=10000, payload=cbor2.dumps(body))
                res = await ctx.request(msg).response
                cbor = res.opt.content_format is not None and int(res.opt.content_format) == 10000
                out.append((str(res.code), cbor2.loads(res.payload) if cbor else None))
        finally:
            await ctx.shutdown()
        return out
    return asyncio.run(go())


def a_device():
    return str(uuid.uuid4())


def signed_up(sim, di):
    """The gateway's sign-up reply for a device it has not seen, with the portal's code."""
    from aiocoap import POST
    (code, reply), = ask(sim, (POST, "/oic/sec/account", {
        "di": di, "authprovider": "plgd", "accesstoken": onboard_code(sim)}))
    assert code.startswith("2.04"), code
    return reply


def sign_in(di, uid, reply):
    from aiocoap import POST
    return (POST, "/oic/sec/session",
            {"di": di, "uid": uid, "accesstoken": reply["accesstoken"], "login": True})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("provider,taken", [("plgd", True), ("no-such-provider", False),
                                            (None, False)], ids=["its-own", "another", "none"])
def test_the_gateway_signs_up_a_device_only_with_the_authorization_provider_it_serves(
        cloudsim, provider, taken):
    # plgd hub's signUp.go: a provider it is not configured with (none named: "") is 4.01
    from aiocoap import POST
    doc = {"di": a_device(), "accesstoken": onboard_code(cloudsim)}
    if provider is not None:
        doc["authprovider"] = provider
    (code, _), = ask(cloudsim, (POST, "/oic/sec/account", doc))
    assert code[:4] == ("2.04" if taken else "4.01")


@pytest.mark.filterwarnings(UNRENDERED)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("uid,taken", [(USER, True), ("someone-else", False)],
                         ids=["the-owner", "someone-else"])
def test_the_gateway_signs_in_a_device_only_with_its_owners_uid(cloudsim, uid, taken):
    # plgd hub's signIn.go: the token's owner claim must be the uid (ValidateOwnerClaim), else 4.01
    di = a_device()
    reply = signed_up(cloudsim, di)
    assert reply["uid"] == USER
    (code, _), = ask(cloudsim, sign_in(di, uid, reply))
    assert code[:4] == ("2.04" if taken else "4.01")


@pytest.mark.filterwarnings(UNRENDERED)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("past,taken", [(-60, True), (60, False)],
                         ids=["60-s-before-expiry", "expired-60-s-ago"])
def test_the_gateway_signs_in_a_device_only_with_an_access_token_not_expired(
        cloudsim, past, taken):
    # plgd hub's signIn.go: a token that fails ValidateToken (expired) is 4.01
    di = a_device()
    reply = signed_up(cloudsim, di)
    advance = reply["expiresin"] + past  # the sim's clock, to that long past the expiry
    api(cloudsim, "POST", "/_sim/clock", {"advance": advance}, admin(cloudsim))
    try:
        (code, _), = ask(cloudsim, sign_in(di, USER, reply))
    finally:
        api(cloudsim, "POST", "/_sim/clock", {"advance": -advance}, admin(cloudsim))
    assert code[:4] == ("2.04" if taken else "4.01")


@pytest.mark.filterwarnings(UNRENDERED)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("signed_in", ["on-it", "on-another", "nowhere"])
def test_the_gateway_takes_a_publish_only_on_the_connection_the_device_signed_in_on(
        cloudsim, signed_in):
    # plgd hub's service.go authMiddleware: on a connection without a sign-in
    # (its authorization context), any request but sign-up, sign-in and refresh is 4.01
    from aiocoap import POST
    gw, di = cloudsim.gateway, a_device()
    reply = signed_up(cloudsim, di)
    publish = (POST, "/oic/rd", {"di": di, "ttl": 0, "links": [
        {"href": "/light/1", "rt": ["core.light"], "if": ["oic.if.baseline"], "p": {"bm": 1}}]})
    signin = sign_in(di, USER, reply)
    connections = {"on-it": [[signin, publish]], "on-another": [[signin], [publish]],
                   "nowhere": [[publish]]}[signed_in]
    # (aiocoap's client cannot be observed: its connection is not closed for that meanwhile)
    gw.require_batch = False
    try:
        answers = [answer for asked in connections for answer in ask(cloudsim, *asked)]
    finally:
        gw.require_batch = True
    *signins, (code, _) = answers
    assert [c[:4] for c, _ in signins] == ([] if signed_in == "nowhere" else ["2.04"])
    assert code[:4] == ("2.04" if signed_in == "on-it" else "4.01")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("named", ["its-own", "never-signed-up"])
def test_the_gateway_refreshes_a_token_only_for_a_device_its_owner_signed_up(cloudsim, named):
    # plgd hub's refreshToken.go: the token's owner must own the device named,
    # else 4.01 ("device is not registered")
    from aiocoap import POST
    di = a_device()
    reply = signed_up(cloudsim, di)
    (code, _), = ask(cloudsim, (POST, "/oic/sec/tokenrefresh", {
        "di": di if named == "its-own" else a_device(), "uid": USER,
        "refreshtoken": reply["refreshtoken"]}))
    assert code[:4] == ("2.04" if named == "its-own" else "4.01")


def answer_then_closed(sim, path, body):
    """The code of the gateway's answer to one POST (body as CBOR) on a new
    coap+tcp connection, after the client's CSM, and whether the gateway then
    closed the connection."""
    import cbor2
    from aiocoap import POST, Message
    from aiocoap.transports.tcp import _serialize
    from test_coap import _csm, _messages

    request = _serialize(Message(code=POST, uri_path=tuple(path.strip("/").split("/")),
                                 content_format=10000, payload=cbor2.dumps(body)))
    with socket.create_connection(("127.0.0.1", sim.gateway.port), timeout=30) as s:
        s.sendall(_csm() + request)
        # (its CSM first, then the answer)
        answer = next((m for m in _messages(s, 2) if m.code.is_response()), None)
        assert answer is not None, "closed before an answer"
        try:
            while s.recv(4096):  # (anything more it sends: none here)
                pass
        except TimeoutError:
            return str(answer.code), False
        except ConnectionResetError:
            pass
        return str(answer.code), True


@pytest.mark.parametrize("path,body", [
    ("/oic/sec/account", {"di": "d", "authprovider": "plgd", "accesstoken": "no-such-code"}),
    ("/oic/sec/session", {"di": "d", "uid": USER, "accesstoken": "no-such-token",
                          "login": True}),
    ("/oic/sec/tokenrefresh", {"di": "d", "uid": USER, "refreshtoken": "no-such-token"}),
    ("/oic/rd", {"di": "d", "ttl": 0, "links": []}),
], ids=["sign-up", "sign-in", "refresh", "publish-not-signed-in"])
def test_the_gateway_closes_the_connection_once_it_has_answered_a_refusal(cloudsim, path,
                                                                           body):
    # plgd hub's service.go: an error answered on the account, session and
    # refresh paths closes the connection (wantToCloseClientOnError), as does a
    # request that needs a sign-in on a connection without one (auth.go)
    code, closed = answer_then_closed(cloudsim, path, body)
    assert code[0] in "45", code
    assert closed


@pytest.mark.filterwarnings(UNRENDERED)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("path,left_out", [("/oic/sec/account", "accesstoken"),
                                           ("/oic/sec/session", "uid"),
                                           ("/oic/sec/session", "accesstoken")],
                         ids=["sign-up-code", "sign-in-uid", "sign-in-token"])
def test_the_gateway_answers_a_sign_up_or_sign_in_missing_a_field_with_4_00(cloudsim, path,
                                                                           left_out):
    # plgd hub's signUp.go and signIn.go check their fields first: one missing is 4.00
    from aiocoap import POST
    di = a_device()
    reply = signed_up(cloudsim, di)
    doc = ({"di": di, "authprovider": "plgd", "accesstoken": onboard_code(cloudsim)}
           if path == "/oic/sec/account" else sign_in(di, USER, reply)[2])
    del doc[left_out]
    (code, _), = ask(cloudsim, (POST, path, doc))
    assert code[:4] == "4.00"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_gateway_takes_a_session_request_without_login_as_a_sign_out(cloudsim):
    # plgd hub's session request: login is a bool, false when left out
    from aiocoap import POST
    di = a_device()
    reply = signed_up(cloudsim, di)
    (code, body), = ask(cloudsim, (POST, "/oic/sec/session", {
        "di": di, "uid": USER, "accesstoken": reply["accesstoken"]}))
    assert (code[:4], body) == ("2.04", {})  # (a sign-in's answer holds its expiresin)
