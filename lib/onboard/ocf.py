# The OCF side of a plgd device, apart from the cloud manager
# (onboard.clouds.plgd), as IoTivity-Lite keeps oc_cloud_resource.c apart:
# the coapcloudconf resource's write rules, and the resources an application
# publishes, each with its resource type, a getter and a setter.
#   write_conf(props) -> the cloud fields after a coapcloudconf write
#   read_conf(cloud) -> coapcloudconf as a reader sees it (never the `at`)
#   resource(href, rt, get, set=None)  get() -> a dict (its content);
#       set(dict) takes a write from the cloud
#   changed(href)                      the observers get the new content
# onboard.clouds.plgd publishes them (with /oic/d) and serves the gateway's
# GET, observe and POST on them through serve() on its CoAP connection, and
# /oic/res as IoTivity-Lite's (with OC_RES_BATCH_SUPPORT and its discovery
# resource observable): its links (oic.if.ll, the default), and every
# resource's content at once (oic.if.b), which plgd hub observes instead of
# each resource when it can (and needs by default: requireBatchObserveEnabled);
# a change is then notified to it as a batch of that resource alone.
from micropython import const

_CF = const(10000)  # application/vnd.ocf+cbor
RES = {}  # href -> [rt, get, set, the observation's token, changed]
conn = None  # the connection the observations came on
batch = None  # the token of its batch observation of /oic/res
anchor = ""  # ocf://<di>
di = None  # the device's id, found once (ident)


def write_conf(props):
    """The cloud fields after a coapcloudconf write, or ValueError naming the
    field: an empty cis deregisters; else cis, at and sid together (apn
    optional); a write naming cps or clec is refused."""
    if "cps" in props or "clec" in props:
        raise ValueError("cps: read-only")
    cis = props.get("cis")
    out = {"cps": "uninitialized", "clec": 0, "access_token": None, "refresh_token": None,
           "uid": None, "apn": props.get("apn") or None, "cis": None, "at": None, "sid": None}
    if cis != "":
        for n in ("cis", "at", "sid"):
            v = props.get(n)
            if not v or len(v) > 512:
                raise ValueError(n + ": cis, at and sid together")
            out[n] = v
        p = cis.partition("://")  # pyright: ignore
        port = p[2].rpartition(":")[2]
        if p[0] not in ("coap+tcp", "coaps+tcp") or not port.isdigit() \
                or not 0 < int(port) < 65536:
            raise ValueError("cis: coap+tcp://host:port or coaps+tcp://host:port")
        out["cps"] = "readytoregister"
    return out


def read_conf(cloud):
    conf = {}
    for k in ("apn", "cis", "sid", "cps", "clec"):  # (a loop: a comprehension is a function)
        conf[k] = cloud.get(k)
    return conf


def resource(href, rt, get, set=None):
    RES[href] = [rt, get, set, None, 0]


def changed(href):
    RES[href][4] = 1


def item(h, r):
    # a resource in a batch: its href under the device's anchor, its content in rep
    return {"href": anchor + h, "rt": [r[0]], "rep": r[1]()}


def reply(c):
    """(options, payload) of content c: Observe (a sequence) and CBOR."""
    import time

    from onboard import cbor

    return ((6, time.ticks_ms() & 0xFFFFFF), (12, _CF)), cbor.dumps(c)  # pyright: ignore


def serve(code, opts, payload):
    """The CoAP handler: GET (observe) and POST on a resource, GET (observe)
    on /oic/res (onboard.ocfres)."""
    from onboard import cbor

    href = ""
    obs = iface = None
    for n, v in opts:
        if n == 11:
            href += "/" + v.decode()
        if n == 6:
            obs = v
        if n == 15 and v[:3] == b"if=":
            iface = v[3:]
    if href == "/oic/res":  # (its code loaded for the answer: twice a connection)
        from onboard import ocfres
        from onboard.store import let_go

        let_go("ocfres")
        return ocfres.answer(code, iface, obs)
    r = RES.get(href)
    if not r or code > 2 or code == 2 and not r[2]:
        return 0x85 if r else 0x84, (), b""  # 4.05, 4.04
    if code == 2:  # a write
        r[2](cbor.loads(payload))
        r[4] = 1
        code = 0x44
    else:
        code = 0x45
        if obs is not None:  # registered (0) or cancelled (1)
            r[3] = None if obs == b"\x01" else conn.last  # pyright: ignore
    return (code,) + reply(r[1]())  # pyright: ignore


def ident(rt):
    """The device's id (di): the one its certificate names (uuid:<di>), when
    it has one, which plgd hub takes instead of the di sent; else a UUID from
    its MAC."""
    global di
    if not di:
        if rt.config.get("cert"):
            from onboard.cloudtls import uuid
            from onboard.store import let_go

            di = uuid(rt.config["cert"])
            let_go("cloudtls")
            let_go("ca")  # (its reader)
        di = di or "00000000-0000-4000-8000-" + rt.uid()
    return di


def device(rt):
    """/oic/d, before the connection's sign-in: the gateway may ask /oic/res
    then, before the links are published."""
    global anchor
    d, name = ident(rt), rt.config.get("name")
    anchor = "ocf://" + d
    RES.setdefault("/oic/d", ["oic.wk.d", lambda: {"di": d, "n": name}, None, None, 0])


def closed():
    """The connection is gone, and its observations with it."""
    global conn, batch
    conn = batch = None
    for r in RES.values():
        r[3] = None


def links():
    """The links /oic/rd publishes: /oic/d and the application's resources."""
    out = []
    for h, r in RES.items():
        out.append({"href": h, "rt": [r[0]], "if": ["oic.if.baseline"], "p": {"bm": 3},
                    "anchor": anchor})
    return out


async def notify(conn):
    """A notification of each resource that changed, to its observation and
    to the batch observation."""
    for h, r in RES.items():
        if r[4] and (r[3] or batch):
            r[4] = 0
            if r[3]:
                await conn.send(0x45, r[3], *reply(r[1]()))
            if batch:
                await conn.send(0x45, batch, *reply([item(h, r)]))  # (a batch of it alone)
