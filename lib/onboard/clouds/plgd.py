# plgd: the device as IoTivity-Lite's cloud manager makes one. The
# coapcloudconf fields (apn, cis, sid, at; cps and clec read-only) arrive
# from setup; then CoAP over TCP (TLS for coaps+tcp, the config's CA the only
# trust anchor) to cis, CBOR bodies: sign-up with the code `at` (once), else
# refresh the stored pair; sign-in, publish /oic/d and the application's
# resources, serve the gateway's GET/observe/POST on them, Ping every 20 s,
# refresh before expiry on the same connection. The runtime stores each new
# pair in one write before the session uses it.
#   resource(href, rt, get, set=None)  publish a resource: get() -> dict,
#       set(dict) for the cloud's writes; changed(href) notifies observers
from micropython import const

FIELDS = (("apn", "Authorization provider", False), ("cis", "Cloud URL", False),
          ("sid", "Cloud ID", False), ("at", "Authorization code", True))
_CF = const(10000)  # application/vnd.ocf+cbor
RES = {}  # href -> [rt, get, set, observing token or None]
_dirty = []
_live = None  # the connection a session keeps for the next refresh
_seq = 0


def resource(href, rt, get, set=None):
    RES[href] = [rt, get, set, None]


def changed(href):
    if href not in _dirty:
        _dirty.append(href)


def write_conf(current, props):
    """The cloud section after a coapcloudconf write, or ValueError naming
    the field: an empty cis deregisters; else cis, at and sid together."""
    if "cps" in props or "clec" in props:
        raise ValueError("cps: read-only")
    out = {"cps": "uninitialized", "clec": 0, "at": None, "access_token": None,
           "refresh_token": None, "uid": None, "apn": None, "cis": None, "sid": None}
    if props.get("cis") == "":
        return out
    for n in ("cis", "at", "sid"):
        v = props.get(n)
        if not v or len(v) > 512:
            raise ValueError(n + ": cis, at and sid must be written together")
        out[n] = v
    if out["cis"].split("://")[0] not in ("coap+tcp", "coaps+tcp"):
        raise ValueError("cis: coap+tcp:// or coaps+tcp://")
    out["apn"] = props.get("apn") or "plgd"
    out["cps"] = "readytoregister"
    return out


def read_conf(cloud):
    """coapcloudconf as a reader sees it: never the `at`."""
    return {k: cloud.get(k) for k in ("apn", "cis", "sid", "cps", "clec")}


def check(fields, config, current=None):
    current = current or {}
    if current.get("refresh_token") and not any(fields.get(f[0]) for f in FIELDS):
        return {}  # Wi-Fi only: the registration stays
    return write_conf(current, fields)


def _ms(rt):
    return rt.config.get("timeout_s", 10) * 1000


def _di(rt):
    return "00000000-0000-4000-8000-" + rt.uid()


async def _connect(rt, cis):
    from onboard import coap
    from onboard.errors import wrap
    from onboard.net import tls_context

    host, _, port = cis.split("://")[1].rpartition(":")
    ctx = tls_context(rt.config.get("ca")) if cis[4] == "s" else None
    try:
        return await coap.connect(host, int(port), ctx, _serve, _ms(rt))
    except ValueError as e:  # mbedTLS refusing the certificate
        raise wrap(e, host, "tls") from None


async def _ask(rt, path, doc, step):
    from onboard import cbor
    from onboard.clouds import Rejected, Transient

    code, _, body = await _live.request(2, path, cbor.dumps(doc), content_format=_CF,
                                        accept=_CF, timeout_ms=_ms(rt))
    if code == 0x81:  # 4.01: the code or the tokens are refused
        raise Rejected(step, 703, {"cps": "failed", "clec": 4, "at": None,
                                   "access_token": None, "refresh_token": None})
    try:
        if code >> 5 != 2:
            raise ValueError
        doc = cbor.loads(body)
        if not isinstance(doc, dict):
            raise ValueError
        return doc
    except ValueError:
        raise Transient(step, 0) from None


async def start(rt):
    """Sign up with the `at` (once), else refresh the stored pair; the link's
    session signs in with what the runtime stored."""
    global _live
    from onboard.clouds import Rejected, seconds, text

    c = rt.store.get("cloud")
    if not c.get("cis"):
        raise Rejected("config", 700)
    if not (_live and _live.w):
        _live = await _connect(rt, c["cis"])
    try:
        di = _di(rt)
        if c.get("at"):
            doc = await _ask(rt, "/oic/sec/account", {
                "di": di, "authprovider": c.get("apn", "plgd"), "accesstoken": c["at"]},
                "sign-up")
            new = {"uid": text(doc.get("uid"), "sign-up"), "at": None, "cps": "registered",
                   "clec": 0}
            uri = doc.get("redirecturi")
            if uri and uri != c["cis"]:  # followed from now on, and kept
                new["cis"] = write_conf({}, {"cis": uri, "at": "-", "sid": "-"})["cis"]
                _live.close()
        elif c.get("refresh_token"):
            doc = await _ask(rt, "/oic/sec/tokenrefresh", {
                "di": di, "uid": c.get("uid"), "refreshtoken": c["refresh_token"]}, "refresh")
            new = {}
        else:
            raise Rejected("config", 700)
        new["access_token"] = text(doc.get("accesstoken"), "token")
        new["refresh_token"] = text(doc.get("refreshtoken"), "token")
        seconds(doc.get("expiresin"), "token")
    except BaseException:
        _live.close()
        raise
    return {"store": new, "renewed": not c.get("at"), "serve": _session(rt, di)}


async def _session(rt, di):
    global _live, _seq
    import asyncio
    import time

    from onboard.clouds import Transient, renew_margin, seconds

    c = rt.store.get("cloud")
    if not _live.w:  # (redirected)
        _live = await _connect(rt, c["cis"])
    conn = _live
    try:
        doc = await _ask(rt, "/oic/sec/session", {
            "di": di, "uid": c["uid"], "accesstoken": c["access_token"], "login": True},
            "sign-in")
        life = seconds(doc.get("expiresin"), "sign-in")
        for r in RES.values():
            r[3] = None  # (observations were the last connection's)
        RES.setdefault("/oic/d", ["oic.wk.d", lambda: {"di": di, "n": rt.config.get("name")},
                                  None, None])
        await _ask(rt, "/oic/rd", {"di": di, "ttl": 0, "links": [
            {"href": h, "rt": [r[0]], "if": ["oic.if.baseline"], "p": {"bm": 3},
             "anchor": "ocf://" + di} for h, r in RES.items()]}, "publish")
        rt.now_online()
        # IoTivity-Lite's margins (none below 20 s); at most 6 days a wait
        due = time.ticks_add(time.ticks_ms(), min(
            life - (renew_margin(life) if life > 20 else 0), 1 << 19) * 1000)
        ping = 0
        while True:
            left = time.ticks_diff(due, time.ticks_ms())
            if not conn.w:
                raise Transient("closed", 0)
            if left <= 0:
                return None  # refresh due: start() again, on this connection
            while _dirty:
                href = _dirty.pop()
                r = RES.get(href)
                if r and r[3]:
                    _seq += 1
                    await conn.send(0x45, r[3], ((6, _seq), (12, _CF)), _body(r))
            await asyncio.sleep_ms(min(left, 500))
            ping += 500
            if ping >= 20000:
                ping = 0
                await conn.request(0xE2, "", timeout_ms=_ms(rt))
    except BaseException:
        conn.close()
        _live = None
        raise


def _body(r):
    from onboard import cbor

    return cbor.dumps(r[1]())


def _serve(code, opts, payload):
    """The gateway's requests on a published resource (the reader task's)."""
    from onboard import cbor, coap

    global _seq
    href = ""
    for n, v in opts:
        if n == 11:
            href += "/" + v.decode()
    r = RES.get(href)
    if not r:
        return 0x84, (), b""  # 4.04
    if code == 2 and r[2]:  # POST: a write
        r[2](cbor.loads(payload))
        changed(href)
        return 0x44, ((12, _CF),), _body(r)
    if code != 1:
        return 0x85, (), b""  # 4.05
    obs = coap.opt(opts, 6)
    out = [(12, _CF)]
    if obs is not None:
        r[3] = None if obs == b"\x01" else _live.last
        _seq += 1
        out.insert(0, (6, _seq))
    return 0x45, out, _body(r)


async def bye(rt, cloud):
    """Sign out and deregister (DELETE /oic/sec/account), best effort: the
    configuration is being reset."""
    global _live
    from onboard import cbor

    if not cloud.get("access_token"):
        return
    di = _di(rt)
    try:
        if not (_live and _live.w):
            _live = await _connect(rt, cloud["cis"])
        await _live.request(2, "/oic/sec/session", cbor.dumps(
            {"di": di, "uid": cloud.get("uid"), "login": False}), content_format=_CF,
            timeout_ms=5000)
        await _live.request(4, "/oic/sec/account", query=(
            "di=" + di, "accesstoken=" + cloud["access_token"]), timeout_ms=5000)
    except Exception:  # noqa: BLE001  (offline: the cloud forgets the device in time)
        pass
    if _live:
        _live.close()
        _live = None


def downlink(cloud, topic, msg):
    return None
