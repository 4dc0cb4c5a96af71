# plgd: the device's coapcloudconf resource (apn, cis, sid, at; cps status
# and clec last error), the authorization code `at` exchanged for tokens at
# the OAuth token endpoint, and refresh before expiry. A rotated refresh
# token and its access token are stored in one write, so a power cut leaves
# the old pair or the new pair, never a mix.
FIELDS = (("apn", "Authorization provider", False), ("cis", "Cloud URL", False),
          ("sid", "Cloud ID", False), ("at", "Authorization code", True))
READABLE = ("apn", "cis", "sid", "cps", "clec")  # `at` is write-only


def write_conf(current, props):
    """The cloud section after a coapcloudconf write, or ValueError.
    Accepted: an empty cis (reset), or cis, at and sid together, and only
    while the device is not registering or registered."""
    if props.get("cis", None) == "":
        return {"apn": None, "cis": None, "sid": None, "at": None, "cps": "uninitialized",
                "clec": "", "access_token": None, "refresh_token": None, "expires_in": None}
    if current.get("cps") in ("registering", "registered"):
        raise ValueError("cps: already %s; reset first (empty cis)" % current["cps"])
    for name in ("cis", "at", "sid"):
        if not props.get(name):
            raise ValueError("%s: cis, at and sid must be written together" % name)
    out = {"cis": props["cis"], "at": props["at"], "sid": props["sid"],
           "cps": "readyToRegister", "clec": ""}
    if props.get("apn"):
        out["apn"] = props["apn"]
    return out


def read_conf(cloud):
    """coapcloudconf as a reader sees it: never the `at`."""
    return {k: cloud.get(k) for k in READABLE}


def check(fields, config, current=None):
    return write_conf(current or {}, fields)


_SAFE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"


def form(fields):
    """application/x-www-form-urlencoded, every byte outside the unreserved set escaped."""
    out = []
    for k, v in fields.items():
        out.append(k + "=" + "".join(chr(b) if b in _SAFE else "%%%02X" % b
                                     for b in str(v).encode()))
    return "&".join(out)


async def _token(rt, fields):
    """The OAuth token endpoint: the new pair and its lifetime, checked."""
    from onboard.clouds import body, fetch, judge, seconds, text

    resp = await fetch(rt, "POST", "/oauth/token", data=form(fields),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    judge(resp, fields["grant_type"])
    access, refresh, lifetime = body(resp, "token", "access_token", "refresh_token",
                                     "expires_in")
    # one write holds the new pair: never the new access token with the old refresh token
    return {"access_token": text(access, "token"), "refresh_token": text(refresh, "token"),
            "expires_in": seconds(lifetime, "token"), "at": None, "cps": "registered",
            "clec": ""}


async def start(rt):
    """Register with the `at` (once), else refresh the stored pair; come back
    to refresh it before it expires."""
    from onboard.clouds import Rejected, renew_margin
    from onboard.codes import ERR_CONFIG, ERR_TOKEN

    client_id = rt.config.get("client_id", "onboard-device")
    cloud = rt.store.get("cloud")
    if cloud.get("refresh_token"):
        fields = {"grant_type": "refresh_token", "client_id": client_id,
                  "refresh_token": cloud["refresh_token"]}
    elif cloud.get("at"):
        fields = {"grant_type": "authorization_code", "client_id": client_id,
                  "code": cloud["at"]}
    else:
        raise Rejected("config", ERR_CONFIG)
    try:
        pair = await _token(rt, fields)
    except Rejected as e:
        raise Rejected(e.args[0], ERR_TOKEN,
                       {"cps": "failed", "clec": "authorization refused"}) from None
    lifetime = pair["expires_in"]
    return {"store": pair, "renewed": "refresh_token" in fields,
            "renew_s": max(1, lifetime - renew_margin(lifetime))}


def downlink(cloud, topic, msg):
    return None
