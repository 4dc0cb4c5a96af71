# plgd: the device as IoTivity-Lite's cloud manager makes one. The
# coapcloudconf fields (apn, cis, sid, at; cps and clec read-only; their
# rules in onboard.ocf.write_conf) arrive from setup; then CoAP over TCP (TLS
# for coaps+tcp, the config's CA the only trust anchor) to cis, CBOR bodies:
# sign-up with the code `at` (once), else refresh the stored pair; the
# runtime stores the new pair in one write, then the link's session signs
# in, publishes /oic/d and the application's resources (onboard.ocf; once a
# connection), serves the gateway's requests on them, Pings every 20 s and
# comes back when the refresh is due (IoTivity-Lite's margins), on the same
# connection, where it signs in again (and publishes, if the gateway did not
# take the links before). 4.01 on
# sign-up or refresh: 703 (cps failed, clec 4, the tokens gone); on sign-in
# or publish: refreshed, then again. A sign-up answered but not taken 6 times
# in a row: 703 (cps failed, clec 2), the code kept.
from micropython import const

from onboard import ocf

_PONG_MS = const(4000)  # IoTivity-Lite's keepalive: a Pong awaited 4 s,
_AGAIN = const(8)  # the next Ping 4 s (8 half-seconds) after one missed,
_MISSES = const(6)  # and the connection given up at the 6th missed in a row
_SIGNUPS = const(6)  # sign-ups the gateway answered but did not take, in a row: given up
_signups = 0  # (plgd hub answers a code it cannot use with 5.03, as when its OAuth
# server is away: IoTivity-Lite gives a sign-up 6 tries, then cps failed)

FIELDS = (("apn", "Authorization provider", False), ("cis", "Cloud URL", False),
          ("sid", "Cloud ID", False), ("at", "Authorization code", True))
_live = None  # the open connection, kept by a session for the next refresh
_published = False  # its links published (once a connection, as IoTivity-Lite)


def check(fields, config, current):
    if current.get("refresh_token"):
        for f in FIELDS:  # (a loop: a generator is a function in RAM)
            if fields.get(f[0]):
                break
        else:
            return {}  # Wi-Fi only: the registration stays
    return ocf.write_conf(fields)


def _close():
    # the connection closed and let go of: kept here closed, it would hold its
    # buffers and the CoAP code (which the runtime lets go of) in RAM for good
    global _live, _published
    if _live:
        _live.close()
    _live = None
    ocf.closed()
    _published = False


async def _ask(rt, cis, path, doc, step=None, code=2, query=()):
    # a request on the open connection (to cis, connected first): its CBOR map reply
    global _live
    from onboard import cbor
    from onboard.cloud import Rejected, Transient

    ms = rt.config.get("timeout_s", 10) * 1000
    if not (_live and _live.w):
        from onboard import coap
        from onboard.errors import wrap
        host, _, port = cis.split("://")[1].rpartition(":")
        # the runtime's context (Runtime.make_tls), else the cloud's made here (a
        # CA that does not load is the config's error, not the TLS's)
        ctx = None
        if cis[4] == "s":
            ctx = rt.ctx
            if not ctx:
                from onboard.cloudtls import context

                ctx = context(rt)  # (which lets go of its code)
        try:
            _live = ocf.conn = await coap.connect(host, int(port), ctx, ocf.serve, ms)
        except ValueError as e:  # mbedTLS refusing the certificate
            raise wrap(e, host, "tls") from None
    doc["di"] = ocf.ident(rt)
    code, _, body = await _live.request(code, path, cbor.dumps(doc),  # pyright: ignore
                                        query, 10000, 10000, timeout_ms=ms)
    if not step:
        return
    if code == 0x81:  # 4.01: the code or the tokens are refused
        if step in ("sign-in", "publish"):
            # the access token alone (plgd hub also answers so when its token
            # check fails for a while): refreshed, then signed in again, as
            # IoTivity-Lite does; the registration goes only with the refresh's
            raise Transient(step, 0)
        raise Rejected(step, 703, {"cps": "failed", "clec": 4, "at": None,
                                   "access_token": None, "refresh_token": None})
    if step == "publish":
        return code == 0x44  # 2.04 Changed: published, as IoTivity-Lite counts it
    try:
        doc = cbor.loads(body)
        if code >> 5 == 2 and isinstance(doc, dict):
            return doc
    except ValueError:
        pass
    raise Transient(step, 0)


async def start(rt):
    """Sign up with the `at` (once), else refresh the stored pair; the link's
    session signs in with what the runtime stored."""
    global _signups
    from onboard.cloud import Rejected, Transient
    from onboard.cloudapi import text

    c = rt.store.get("cloud")
    try:
        if c.get("at"):
            try:
                doc = await _ask(rt, c["cis"], "/oic/sec/account", {
                    "authprovider": c.get("apn") or "plgd", "accesstoken": c["at"]}, "sign-up")
            except Transient:
                _signups += 1
                if _signups < _SIGNUPS:
                    raise
                _signups = 0
                # the code kept: sent again after setup mode idles, or replaced there
                raise Rejected("sign-up", 703, {"cps": "failed", "clec": 2}) from None
            _signups = 0
            new = {"uid": text(doc.get("uid"), "sign-up"), "at": None, "cps": "registered",
                   "clec": 0}
            uri = doc.get("redirecturi")
            if uri and uri != c["cis"]:  # followed from now on, and kept
                new["cis"] = ocf.write_conf({"cis": uri, "at": "-", "sid": "-"})["cis"]
                _close()
        elif c.get("refresh_token"):
            doc = await _ask(rt, c["cis"], "/oic/sec/tokenrefresh", {
                "uid": c["uid"], "refreshtoken": c["refresh_token"]}, "refresh")
            new = {}
        else:
            raise Rejected("config", 700)
        new["access_token"] = text(doc.get("accesstoken"), "token")
        new["refresh_token"] = text(doc.get("refreshtoken"), "token")
    except BaseException:
        _close()
        raise
    return {"store": new, "renewed": not c.get("at"), "serve": _session(rt)}


async def _session(rt):
    global _published
    import asyncio
    import time

    from onboard.cloud import renew_margin

    c = rt.store.get("cloud")  # (what the runtime stored from start())
    cis = c["cis"]
    ocf.device(rt)
    try:
        life = (await _ask(rt, cis, "/oic/sec/session", {
            "uid": c["uid"], "accesstoken": c["access_token"], "login": True},
            "sign-in")).get("expiresin")
        if type(life) is not int or not 0 < life < 1 << 19:
            life = 1 << 19  # a token that does not expire: at most 6 days a wait
        from onboard.errors import Timeout

        # once a connection: after a refresh on it, signed in again only (the
        # gateway observes a path once a connection, and keeps observing it)
        if not _published:
            # any other answer than 4.01, or none in timeout_s, leaves them for
            # the next sign-in (after the next refresh, or on a new connection),
            # signed in meanwhile, the keepalive judging the connection, as
            # IoTivity-Lite (oc_cloud_rd.c); plgd hub answers 4.00 when its
            # resource aggregate fails, 5.00 when its queue is full
            try:
                _published = await _ask(rt, cis, "/oic/rd", {"ttl": 0, "links": ocf.links()},
                                        "publish")
            except Timeout:
                pass
            if not _published:
                from onboard import log

                log.warn("plgd", "unpublished: again at sign-in")
        rt.now_online()
        # refresh with IoTivity-Lite's margins (none at 20 s or less)
        due = time.ticks_add(time.ticks_ms(),
                             (life - (renew_margin(life) if life > 20 else 0)) * 1000)
        # a Ping every keepalive_s (20), its Pong awaited 4 s; after a Pong
        # missed, the next Ping 4 s later, and the 6th missed in a row ends
        # the session (about 45 s silent), as IoTivity-Lite's keepalive does
        ka = rt.config.get("keepalive_s", 20) * 2  # (in half-seconds, as t)
        t = missed = 0
        ping = ka
        while time.ticks_diff(due, time.ticks_ms()) > 0:
            await ocf.notify(_live)
            await asyncio.sleep_ms(500)
            t += 1
            if t >= ping or not _live.w:  # (on a closed connection: ProtocolError)
                try:
                    await _live.request(0xE2, "", timeout_ms=_PONG_MS)
                    missed, ping = 0, t + ka
                except Timeout:
                    missed += 1
                    if missed == _MISSES:
                        raise
                    ping = t + _AGAIN
        return None  # refresh due: start() again, on this connection
    except BaseException:
        _close()
        raise


async def bye(rt, cloud):
    """Deregister (DELETE /oic/sec/account naming di, uid and the access
    token, as IoTivity-Lite: no sign-out first, on a connection not signed in
    plgd hub takes neither without them), best effort: the configuration is
    being reset."""
    import asyncio

    for _ in range(200):  # the session, cancelled, ends (closing its connection) first
        if not rt.session:
            break
        await asyncio.sleep_ms(10)
    try:
        await _ask(rt, cloud["cis"], "/oic/sec/account", {}, None, 4, (
            "di=" + ocf.ident(rt), "uid=" + cloud["uid"], "accesstoken=" + cloud["access_token"]))
    except Exception:  # noqa: BLE001  (offline, never registered: the cloud forgets in time)
        pass
    _close()
