"""plgd's CoAP gateway, the device side of plgd hub, on aiocoap: CoAP over
TCP (coap+tcp) and TLS (coaps+tcp) with CBOR bodies (content format 10000).

As plgd hub's coap-gateway (service/signUp.go, signIn.go, refreshToken.go,
publishResource.go) and IoTivity-Lite's cloud manager use it:
- POST /oic/sec/account {di, authprovider, accesstoken}: sign-up with an
  authorization code the OAuth server issued (once) for the user, naming the
  gateway's provider (PROVIDER; any other, or none: 4.01) ->
  {accesstoken, refreshtoken, uid, expiresin[, redirecturi]}
- DELETE /oic/sec/account?di=&uid=&accesstoken=: deregistration (sign-off)
- POST /oic/sec/session {di, uid, accesstoken, login}: sign-in (-> {expiresin})
  or, with login false, sign-out; a sign-off's or sign-out's uid and
  accesstoken may be left out on a connection signed in as the device
  (4.00 elsewhere), the token must be the uid's (4.01)
- POST /oic/sec/tokenrefresh {di, uid, refreshtoken} -> {accesstoken,
  refreshtoken, expiresin}; refresh tokens rotate (each works once)
- POST /oic/rd {di, links, ttl}: publish, only on a signed-in connection.
After the first sign-in on a connection the gateway observes the device over
it (a device is a CoAP server too), as plgd hub's deviceObserver.go does
(observation type Detect): GET /oic/res?if=oic.if.ll; when its /oic/res
link is observable with oic.if.b, or it cannot be read, one observation of
/oic/res?if=oic.if.b (every resource's content in its first answer, a batch
of the changed ones in each notification); when that fails and
`require_batch` holds (the hub's requireBatchObserveEnabled, true in its
default config.yaml) the connection is closed; else each published resource
is observed (read once when its link says it is not observable).
Refused credentials get 4.01, a malformed body 4.00; an error answered on
the account, session or refresh path, and a 4.01 for a request that needs a
sign-in, close the connection after the answer, as the hub does. Faults from
/_sim/faults match a path here ("/oic/sec/session", ...): "drop" closes the
connection, "status" answers that status (503 -> 5.03, 401 -> 4.01),
"latency" stays silent for "seconds", "shape" answers 2.04 with "body" (as
CBOR; without one, bytes that are not CBOR)."""

import asyncio
import collections
import json
import ssl
import threading
import time
import uuid

import cbor2
from aiocoap import GET, POST, Context, Message, resource
from aiocoap.numbers.codes import Code
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from onboard_cli.ports import free_port

from .pki import OCF_IDENTITY

OCF_CBOR = 10000
# The content formats the hub decodes (plgd hub's commands.DecodeContent:
# CBOR, OCF's CBOR, JSON). Content in any other format is taken from the
# device all the same, but its C2C API leaves that resource out of a listing
# ("unsupported content type"), as this one does.
DECODERS = {60: cbor2.loads, OCF_CBOR: cbor2.loads, 50: json.loads}
# The answers whose content plgd hub takes (coapconv.CoapCodeToStatus: OK for
# 2.02, 2.04 and 2.05, CREATED for 2.01; 2.03 Valid is "not modified", any
# other code an error)
CONTENT_CODES = (Code.CREATED, Code.DELETED, Code.CHANGED, Code.CONTENT)
UNDECODED = object()  # the content of a resource whose format the hub does not decode
USER = "user-admin"  # the portal's signed-in user (the admin token's session)
DEVICE_CLIENT = "onboard-device"  # the OAuth client whose codes onboard devices
# the one authorization provider the gateway is configured with, by name (plgd
# hub's apis.coap.authorization.providers[].name; its bundle's DEVICE_PROVIDER
# is "plgd"): the apn a device is given (`onboard plgd onboard` prints it; a
# device without one names it so)
PROVIDER = "plgd"
# the paths on which the hub closes the connection after any error it answers
CLOSE_ON_ERROR = ("/oic/sec/account", "/oic/sec/session", "/oic/sec/tokenrefresh")


def coap_code(status):
    """503 -> 5.03: an HTTP-like status as a CoAP code."""
    return Code((status // 100) << 5 | status % 100)


class _Refused(Exception):
    def __init__(self, code, why):
        super().__init__(why)
        self.code = code


class _Endpoint(resource.Resource):
    def __init__(self, gw, path, tls):
        super().__init__()
        self.gw, self.path, self.tls = gw, path, tls

    async def render(self, request):
        return await self.gw.handle(self.path, self.tls, request)


class Gateway:
    def __init__(self, sim, plgd, certfile, keyfile, port=0, tls_port=0):
        self.sim, self.plgd = sim, plgd
        self.certfile, self.keyfile = certfile, keyfile
        self.port = port or free_port()
        self.tls_port = tls_port or free_port(pair=True)
        self.fixed = {False: bool(port), True: bool(tls_port)}
        self.devices = {}  # di -> {"uid", "links": {href: {"rt", "content"}}, "remote", "ctx"}
        self.access = {}  # device access token -> {"di", "uid", "exp"}
        self.refresh = {}  # device refresh token -> {"di", "uid"}
        # (monotonic time, event, di): signup, signin, signout, refresh, publish, deregister,
        # and each refusal as "<event> refused"
        self.events = collections.deque(maxlen=10000)
        self.observing = set()  # (di, href) whose observation has had its first answer
        # the observations' tasks: the loop holds a task only weakly, and a task
        # waiting for a notification is otherwise held by nothing but its own
        # cycle (task, aiocoap's observation, its future), which Python's cyclic
        # GC may collect mid-observation: aiocoap then cancels it, and the
        # device's next notification is dropped
        self.observers = set()
        self.deregistered_on = {}  # di -> the connection its deregistration came on
        self.came_on = {}  # path -> the connection its last request came on (tests)
        # test hook: f(path, doc) as each request arrives (after its fault), in the
        # gateway's loop: a test can act at an observed moment (kill the device)
        self.on_request = None
        self.redirect = None  # a URI sent as redirecturi at the next sign-up
        self.require_batch = True  # plgd hub's requireBatchObserveEnabled (its default)
        self._required = False  # clientCertificateRequired (client_cert_required)
        self.sslctx = None
        self.changed = threading.Condition()
        self.loop = None
        self.contexts = {}

    # -- life cycle --------------------------------------------------------------

    def start(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.run(self._start())
        return self

    async def _start(self):
        sslctx = self.sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sslctx.load_cert_chain(str(self.certfile), str(self.keyfile))
        # a device's own certificate is asked for, and checked against the
        # sim's CA (the hub's caPool) when given; client_cert_required: needed
        sslctx.load_verify_locations(str(self.sim.dir / "ca.pem"))
        self.client_cert_required = self._required
        for tls in (False, True):
            site = resource.Site()
            for path in ("oic/sec/account", "oic/sec/session", "oic/sec/tokenrefresh", "oic/rd"):
                site.add_resource(path.split("/"), _Endpoint(self, "/" + path, tls))
            for attempt in range(20):  # a free port taken meanwhile: another one
                try:
                    if tls:  # (aiocoap's TLS server listens one above the port it is given)
                        self.contexts[tls] = await Context.create_server_context(
                            site, bind=("127.0.0.1", self.tls_port - 1),
                            transports=["tlsserver"], _ssl_context=sslctx)
                    else:
                        self.contexts[tls] = await Context.create_server_context(
                            site, bind=("127.0.0.1", self.port), transports=["tcpserver"])
                    break
                except OSError:
                    if attempt == 19 or self.fixed[tls]:
                        raise
                    if tls:
                        self.tls_port = free_port(pair=True)
                    else:
                        self.port = free_port()

    @property
    def client_cert_required(self):
        """plgd hub's clientCertificateRequired (true in its config.yaml and
        Helm chart, false in its bundle; False here): coaps+tcp connections
        made from now on need a device certificate the sim's CA issued."""
        return self._required

    @client_cert_required.setter
    def client_cert_required(self, value):
        self._required = bool(value)
        if self.sslctx:
            self.sslctx.verify_mode = ssl.CERT_REQUIRED if value else ssl.CERT_OPTIONAL

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        if not self.loop:
            return
        for ctx in self.contexts.values():
            try:
                self.run(ctx.shutdown(), 5)
            except Exception:  # noqa: BLE001  (a connection whose handshake failed)
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)

    # -- the device's requests ---------------------------------------------------

    def log(self, event, di):
        with self.changed:
            self.events.append((time.monotonic(), event, di))
            self.changed.notify_all()
        self.sim.log(f"plgd gateway: {event} {di}")

    def wait_event(self, di, event, timeout=20, count=1):
        """True once the gateway logged this event for the device (count times
        in all) (tests)."""
        with self.changed:
            return self.changed.wait_for(
                lambda: sum(e == event and who == di for _, e, who in self.events) >= count,
                timeout)

    def wait_observing(self, di, href, timeout=20):
        """True once the gateway observes the device's resource href: its
        first answer came, so a later change is notified (tests)."""
        with self.changed:
            return self.changed.wait_for(lambda: (di, href) in self.observing, timeout)

    def _identity(self, request):
        """The device id the connection's certificate names, as plgd hub's
        coap-gateway takes it (pkg/net/coap verify.go: extended key usages
        client and server authentication and OCF's identity, 1.3.6.1.4.1.44924.1.6;
        subject CN uuid:<id>), None without one; _Refused (the connection
        closed, as the hub's handshake fails) for a certificate it refuses."""
        transport = request.remote._transport
        sslobj = transport and transport.get_extra_info("ssl_object")
        der = sslobj and sslobj.getpeercert(binary_form=True)
        if not der:
            return None
        cert = x509.load_der_x509_certificate(der)
        try:
            ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            ekus = set()
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        kind, _, di = (cn[0].value if cn else "").partition(":")
        try:
            di = str(uuid.UUID(di)) if kind.lower() == "uuid" else None
        except ValueError:
            di = None
        if not {x509.ObjectIdentifier(OCF_IDENTITY), ExtendedKeyUsageOID.CLIENT_AUTH,
                ExtendedKeyUsageOID.SERVER_AUTH} <= ekus or not di:
            transport.abort()
            raise _Refused(Code.UNAUTHORIZED, "certificate: not a device identity certificate")
        return di

    async def handle(self, path, tls, request):
        method = request.code.name  # POST, DELETE, ...
        self.came_on[path] = request.remote
        fault = self.sim.faults.take(method, path)
        if fault:
            kind = fault["kind"]
            if kind == "drop":
                request.remote._transport.abort()
                await asyncio.sleep(1)
                return Message(code=Code.SERVICE_UNAVAILABLE)  # (never sent: closed)
            if kind == "status":
                code = coap_code(int(fault.get("status", 503)))
                if path in CLOSE_ON_ERROR:
                    self._close_after_reply(request)
                return Message(code=code)
            if kind == "shape":  # 2.04 with a body of another shape (not CBOR without one)
                return Message(code=Code.CHANGED, content_format=OCF_CBOR, payload=cbor2.dumps(
                    fault["body"]) if "body" in fault else b"\xff not cbor")
            if kind == "latency":
                await asyncio.sleep(float(fault.get("seconds", 5)))
        try:
            # the device's id from its certificate, when it gave one: the
            # hub takes it instead of the di a request names (auth.go
            # VerifyAndResolveDeviceID)
            named = self._identity(request) if tls else None
            if method == "DELETE" and path == "/oic/sec/account":
                if self.on_request:
                    self.on_request(path, None)
                return self.deregister(request, named)
            if method != "POST":
                return Message(code=Code.METHOD_NOT_ALLOWED)
            try:
                doc = cbor2.loads(request.payload)
            except Exception:  # noqa: BLE001
                doc = None
            if not isinstance(doc, dict) or not isinstance(doc.get("di"), str):
                raise _Refused(Code.BAD_REQUEST, "body: a CBOR map with di")
            if named:
                doc["di"] = named
            if self.on_request:
                self.on_request(path, doc)
            with self.sim.lock:
                reply = {"/oic/sec/account": self.sign_up, "/oic/sec/session": self.session,
                         "/oic/sec/tokenrefresh": self.token_refresh,
                         "/oic/rd": self.publish}[path](doc, request, tls)
            return Message(code=Code.CHANGED, payload=cbor2.dumps(reply),
                           content_format=OCF_CBOR)
        except _Refused as e:
            self.log(f"{path} refused: {e}", "?")
            # the hub closes the connection once it has answered an error on
            # the sign-up, sign-in and refresh paths (service.go's
            # wantToCloseClientOnError), and a request that needs a sign-in
            # on a connection that has none (auth.go's interceptor)
            if path in CLOSE_ON_ERROR or e.code == Code.UNAUTHORIZED:
                self._close_after_reply(request)
            return Message(code=e.code, payload=str(e).encode())

    @staticmethod
    def _close_after_reply(request):
        # (10 ms on, as the hub's: the reply, written by then, goes out first)
        transport = request.remote._transport
        if transport:
            asyncio.get_running_loop().call_later(0.01, transport.close)

    def _issue(self, di, uid):
        lifetime = self.sim.lifetime("plgd")
        access, refresh = self.plgd.mint(), self.plgd.mint()
        self.access[access] = {"di": di, "uid": uid, "exp": self.sim.now() + lifetime}
        self.refresh[refresh] = {"di": di, "uid": uid}
        self.plgd.pairs.add((access, refresh))
        return {"accesstoken": access, "refreshtoken": refresh, "expiresin": lifetime}

    def sign_up(self, doc, request, tls):
        di, code = doc["di"], doc.get("accesstoken")
        if not isinstance(code, str) or not code:
            raise _Refused(Code.BAD_REQUEST, "accesstoken: missing")  # (signUp.go's checks)
        if doc.get("authprovider") != PROVIDER:
            # plgd hub's signUp.go looks the provider up by name among those it
            # is configured with before it exchanges the code (which stays unused)
            raise _Refused(Code.UNAUTHORIZED, "authprovider: unknown authorization provider")
        grant = self.plgd.codes.get(code)
        if not grant or grant["client_id"] != DEVICE_CLIENT:
            # plgd hub's signUp.go answers any failed exchange of the code with
            # the OAuth server (unknown, used, another client's) with 5.03
            raise _Refused(Code.SERVICE_UNAVAILABLE, "accesstoken: unknown or used code")
        del self.plgd.codes[code]  # a code works once
        self.devices[di] = {"di": di, "uid": USER, "links": {}, "remote": None, "ctx": None}
        reply = {**self._issue(di, USER), "uid": USER}
        if self.redirect:
            reply["redirecturi"], self.redirect = self.redirect, None
        self.log("signup", di)
        return reply

    def _device(self, di):
        dev = self.devices.get(di)
        if not dev:
            raise _Refused(Code.UNAUTHORIZED, "di: not signed up")
        return dev

    def session(self, doc, request, tls):
        di = doc["di"]
        login = doc.get("login", False)  # (the hub's request: a bool, false when left out)
        if not isinstance(login, bool):
            raise _Refused(Code.BAD_REQUEST, "login: not a bool")
        if login and not all(isinstance(doc.get(k), str) and doc[k]
                             for k in ("uid", "accesstoken")):
            raise _Refused(Code.BAD_REQUEST, "uid, accesstoken: missing")  # (signIn.go's checks)
        dev = self._device(di)
        if not login:
            self._signed_off(request, di, doc.get("uid"), doc.get("accesstoken"), "sign out")
            if dev["remote"] is request.remote:
                dev["remote"] = None
            self.log("signout", di)
            return {}
        held = self.access.get(doc.get("accesstoken"))
        if not held or held["di"] != di or held["uid"] != doc.get("uid") \
                or held["exp"] < self.sim.now():
            raise _Refused(Code.UNAUTHORIZED, "accesstoken: unknown or expired")
        new = dev["remote"] is not request.remote  # a new connection: nothing observed on it
        dev["remote"], dev["ctx"] = request.remote, self.contexts[tls]
        dev["token"] = doc["accesstoken"]  # (the connection's: sign-out and sign-off default to it)
        self.log("signin", di)
        if new:  # (a sign-in again on it, after a refresh, keeps its observer, as the hub's)
            dev["observed"] = set()
            dev["mode"] = asyncio.get_running_loop().create_future()
            self._task(self._watch(dev, dev["mode"]))
        return {"expiresin": int(held["exp"] - self.sim.now())}

    def token_refresh(self, doc, request, tls):
        di = doc["di"]
        held = self.refresh.get(doc.get("refreshtoken"))
        if not held or held["di"] != di or held["uid"] != doc.get("uid"):
            raise _Refused(Code.UNAUTHORIZED, "refreshtoken: unknown or already used")
        del self.refresh[doc["refreshtoken"]]  # rotated: each works once
        reply = self._issue(di, held["uid"])
        self.log("refresh", di)
        return reply

    def publish(self, doc, request, tls):
        di = doc["di"]
        dev = self._device(di)
        if dev["remote"] is not request.remote:
            raise _Refused(Code.UNAUTHORIZED, "sign in first")
        links = doc.get("links")
        if not isinstance(links, list) or not all(
                isinstance(k, dict) and isinstance(k.get("href"), str) for k in links):
            raise _Refused(Code.BAD_REQUEST, "links: a list of links with href")
        # plgd hub's resourceDirectory.go: ttl (or the legacy lt) is needed; a
        # ttl above 0 makes the links valid for that many seconds, 0 for good
        ttl = doc.get("ttl", doc.get("lt", -1))
        if not isinstance(ttl, int) or ttl < 0:
            raise _Refused(Code.BAD_REQUEST, "ttl: invalid TimeToLive")
        until = self.sim.now() + ttl if ttl > 0 else None
        observed = dev.setdefault("observed", set())
        for link in links:
            dev["links"][link["href"]] = {"rt": link.get("rt", []),
                                          "content": dev.get("seen", {}).get(link["href"]),
                                          "until": until}
            # plgd hub observes a link whose policy says observable (bm & 2), and
            # reads the others once; a path it observes on this connection
            # already is not observed again (its resourcesObserver adds only new
            # paths): a device that publishes again after a refresh on the same
            # connection keeps the observations it had
            if link["href"] in observed:
                continue
            observed.add(link["href"])
            policy = link.get("p")
            bm = policy.get("bm") if isinstance(policy, dict) else None
            observable = isinstance(bm, int) and bool(bm & 2)
            self._task(self._observe(dev, link["href"], observable, dev["mode"]))
        self.log("publish", di)
        return {"di": di, "links": links, "ttl": doc.get("ttl", 0)}

    def _signed_off(self, request, di, uid, token, what):
        """As plgd hub's signOff.go and sign-out: di, uid and accesstoken,
        each taken from the connection's sign-in when not given (4.00 when
        one is missing still); the token must be a live one of di, owned by
        uid (4.01). The token's record."""
        dev = self.devices.get(di)
        if dev and dev["remote"] is request.remote and dev.get("token"):
            uid, token = uid or dev["uid"], token or dev["token"]
        if not (di and uid and token):
            raise _Refused(Code.BAD_REQUEST, f"cannot handle {what}: di, uid and accesstoken")
        held = self.access.get(token)
        if not held or held["di"] != di or held["uid"] != uid:
            raise _Refused(Code.UNAUTHORIZED, f"cannot handle {what}: accesstoken")
        return held

    def deregister(self, request, named=None):
        query = dict(q.split("=", 1) for q in request.opt.uri_query if "=" in q)
        di = named or query.get("di", "")
        with self.sim.lock:
            self._signed_off(request, di, query.get("uid"), query.get("accesstoken"),
                             "sign off")
            self.devices.pop(di, None)
            self.deregistered_on[di] = request.remote
            for table in (self.access, self.refresh):
                for token in [t for t, v in table.items() if v["di"] == di]:
                    del table[token]
        self.log("deregister", di)
        return Message(code=Code.DELETED)

    # -- the gateway as a client of the device ---------------------------------------

    def kick(self, di):
        """Close the device's connection (as a gateway restarting would)."""
        dev = self.devices.get(di)
        if dev and dev["remote"] and dev["remote"]._transport:
            self.loop.call_soon_threadsafe(dev["remote"]._transport.abort)
            return True
        return False

    def hung_up(self, di, timeout=10):
        """True once the device has closed the connection it deregistered on
        (tests: a device that forgets it holds the gateway's resources)."""
        return self.closed(self.deregistered_on.get(di), timeout)

    def closed(self, remote, timeout=10):
        """True once the connection remote (a request's) is closed, within timeout."""
        stop = time.monotonic() + timeout
        while remote is not None and time.monotonic() < stop:
            transport = remote._transport
            if not transport or transport.is_closing():
                return True
            time.sleep(0.05)  # (asyncio's transport has no event another thread can wait on)
        return False

    def online(self, di):
        dev = self.devices.get(di)
        remote = dev and dev["remote"]
        transport = remote and remote._transport
        return bool(transport) and not transport.is_closing()

    def _task(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.observers.add(task)
        task.add_done_callback(self.observers.discard)

    def _request(self, dev, href, query=(), observe=False):
        msg = Message(code=GET, uri_path=href.strip("/").split("/"), uri_query=query,
                      **({"observe": 0} if observe else {}))
        msg.remote = dev["remote"]
        return dev["ctx"].request(msg)

    async def _watch(self, dev, mode):
        """plgd hub's NewDeviceObserver on a new connection: the batch
        observation of /oic/res, else (not required) one per resource."""
        try:
            await self._detect(dev, mode)
        finally:
            if not mode.done():  # (the publish's observations wait for it)
                mode.set_result(None)

    async def _detect(self, dev, mode):
        remote, links = dev["remote"], None
        try:
            req = self._request(dev, "/oic/res", ["if=oic.if.ll"])
            res = await asyncio.wait_for(req.response, 10)
            if res.code == Code.CONTENT:
                links = cbor2.loads(res.payload)
        except Exception:  # noqa: BLE001  (no /oic/res, or a timeout: a batch observation tried)
            pass
        batch = True
        own = [k for k in links if isinstance(k, dict) and k.get("href") == "/oic/res"] \
            if isinstance(links, list) else []
        if own:  # (none, or no links: the hub tries the batch observation)
            p, ifs = own[0].get("p"), own[0].get("if")
            batch = isinstance(p, dict) and isinstance(p.get("bm"), int) and bool(p["bm"] & 2) \
                and isinstance(ifs, list) and "oic.if.b" in ifs
        if batch and await self._batch(dev, mode):
            return
        if self.require_batch:
            self.log("observation refused", dev["di"])
            if remote._transport:  # (the hub's signIn.go: no observer, the connection closed)
                remote._transport.abort()
            return
        mode.set_result("resource")

    async def _batch(self, dev, mode):
        """The batch observation of /oic/res: False when it cannot be made."""
        di = dev["di"]
        try:
            req = self._request(dev, "/oic/res", ["if=oic.if.b"], True)
            notes = req.observation.__aiter__()
            first = await asyncio.wait_for(req.response, 10)
            # the hub drops an answer without Observe: the observation is not made
            if not first.code.is_successful() or first.opt.observe is None:
                return False
        except Exception:  # noqa: BLE001
            return False
        mode.set_result("batch")
        self.log("observing /oic/res", di)
        try:
            with self.changed:
                for href in self._batch_content(dev, first):
                    self.observing.add((di, href))
                self.changed.notify_all()
            while True:
                note = await notes.__anext__()
                for href in self._batch_content(dev, note):
                    self.log(f"notified {href}", di)
        except Exception as e:  # noqa: BLE001  the device went away
            self.sim.log(f"plgd gateway: observing /oic/res of {di} ended: {type(e).__name__} {e}")
        return True

    def _batch_content(self, dev, msg):
        """The hrefs of a batch answer (coapconv's
        NewNotifyResourceChangedRequestsFromBatchResourceDiscovery), each
        one's rep kept as its content."""
        fmt = msg.opt.content_format
        if msg.code not in CONTENT_CODES or fmt is None or int(fmt) not in (60, OCF_CBOR):
            self.sim.log(f"plgd gateway: /oic/res of {dev['di']}: not a batch the hub decodes")
            return []
        out = []
        for item in cbor2.loads(msg.payload):
            raw = item.get("href", "") if isinstance(item, dict) else ""
            parts = raw.removeprefix("ocf://").split("/", 1)
            if len(parts) != 2:
                continue
            href = "/" + parts[1]
            dev.setdefault("seen", {})[href] = item.get("rep")
            if href in dev["links"]:
                dev["links"][href]["content"] = item.get("rep")
            out.append(href)
        return out

    async def _observe(self, dev, href, observable, mode):
        # as plgd hub does without a batch observation: observe each
        # observable published resource, keep its content; one that is not
        # observable is read once (with the batch one: nothing, its
        # AddPublishedResources)
        if await mode != "resource":
            return
        try:
            req = self._request(dev, href, observe=observable)
            # listening before the first response: a notification right after it is not missed
            notes = req.observation.__aiter__() if observable else None
            first = await asyncio.wait_for(req.response, 10)
            self._content(dev, href, first)
            if not observable:
                self.log(f"read {href}", dev["di"])
                return
            with self.changed:  # (not an event: the device's requests are the events)
                self.observing.add((dev["di"], href))
                self.changed.notify_all()
            while True:
                note = await notes.__anext__()  # (StopAsyncIteration: the observation ended)
                self._content(dev, href, note)
                self.log(f"notified {href}", dev["di"])
        except Exception as e:  # noqa: BLE001  the device went away or answered badly
            # (in the sim's log, not its events: a test waiting for a
            # notification that never comes can then tell why)
            self.sim.log(f"plgd gateway: observing {href} of {dev['di']} ended: "
                         f"{type(e).__name__} {e}")

    def _content(self, dev, href, msg):
        """The content of the device's answer for href, kept as the resource's
        (as plgd hub would take it), or None."""
        if href not in dev["links"]:
            return None
        if msg.code not in CONTENT_CODES:
            self.sim.log(f"plgd gateway: {href} of {dev['di']}: answered {msg.code}, "
                         "no content the hub takes")
            return None
        fmt = msg.opt.content_format
        decode = DECODERS.get(None if fmt is None else int(fmt))
        if not decode:
            dev["links"][href]["content"] = UNDECODED
            self.sim.log(f"plgd gateway: {href} of {dev['di']}: content format {fmt} "
                         "is not one the hub decodes")
            return None
        try:
            content = dev["links"][href]["content"] = decode(msg.payload)
        except Exception:  # noqa: BLE001
            return None
        return content

    async def _ask(self, di, code, href, body=None):
        dev = self.devices[di]
        msg = Message(code=code, uri_path=href.strip("/").split("/"))
        msg.remote = dev["remote"]
        if body is not None:
            msg.payload, msg.opt.content_format = cbor2.dumps(body), OCF_CBOR
        res = await asyncio.wait_for(dev["ctx"].request(msg).response, 5)
        return res.code, self._content(dev, href, res)

    async def _ask_all(self, asks):
        async def one(di, href):
            try:
                await asyncio.wait_for(self._ask(di, GET, href), 2)
            except Exception:  # noqa: BLE001  (the last known content stays)
                pass
        await asyncio.gather(*(one(di, href) for di, href in asks))

    def update(self, di, href, body):
        """(code, content) of a POST to the device's resource."""
        return self.run(self._ask(di, POST, href, body))

    def listing(self):
        """The devices as the C2C API shows them: each online device's resources
        asked at once (2 s at most), the last known content otherwise."""
        devices = list(self.devices.items())
        online = {di: self.online(di) for di, _ in devices}
        self.run(self._ask_all([(di, h) for di, dev in devices if online[di]
                                for h in list(dev["links"])]))
        return [{"id": di, "onboarded": True,
                 "metadata": {"connection": {"status": "ONLINE" if online[di] else "OFFLINE"}},
                 "resources": [{"href": h, "rt": v["rt"], "content": v["content"]}
                               for h, v in list(dev["links"].items())
                               if v["content"] is not UNDECODED and not (
                                   v.get("until") and v["until"] < self.sim.now())]}
                for di, dev in devices]
