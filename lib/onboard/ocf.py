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
# GET, observe and POST on them through serve() on its CoAP connection.
from micropython import const

_CF = const(10000)  # application/vnd.ocf+cbor
RES = {}  # href -> [rt, get, set, the observation's token, changed]
conn = None  # the connection the observations came on


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


def reply(r):
    """(options, payload) of a resource's content: Observe (a sequence) and CBOR."""
    import time

    from onboard import cbor

    return ((6, time.ticks_ms() & 0xFFFFFF), (12, _CF)), cbor.dumps(r[1]())  # pyright: ignore


def serve(code, opts, payload):
    """The CoAP handler: GET (observe) and POST on a resource."""
    from onboard import cbor

    href = ""
    obs = None
    for n, v in opts:
        if n == 11:
            href += "/" + v.decode()
        if n == 6:
            obs = v
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
    return (code,) + reply(r)


def links(di, name):
    """The links /oic/rd publishes: /oic/d and the application's resources
    (whose observations start afresh: a new connection)."""
    RES.setdefault("/oic/d", ["oic.wk.d", lambda: {"di": di, "n": name}, None, None, 0])
    out = []
    for h, r in RES.items():
        r[3] = None
        out.append({"href": h, "rt": [r[0]], "if": ["oic.if.baseline"], "p": {"bm": 3},
                    "anchor": "ocf://" + di})
    return out


async def notify(conn):
    """A notification for each observed resource that changed."""
    for r in RES.values():
        if r[4] and r[3]:
            r[4] = 0
            await conn.send(0x45, r[3], *reply(r))
