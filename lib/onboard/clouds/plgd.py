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


async def _token(rt, form):
    from onboard import http
    from onboard.clouds import body, judge

    cfg = rt.config
    data = "&".join("%s=%s" % (k, v) for k, v in form.items())
    resp = await http.arequest("POST", cfg["api"] + "/oauth/token", data=data,
                               headers={"Content-Type": "application/x-www-form-urlencoded"},
                               ca=cfg.get("ca"), timeout=cfg.get("timeout_s", 10))
    judge(resp, form["grant_type"])
    access, refresh, lifetime = body(resp, "token", "access_token", "refresh_token",
                                     "expires_in")
    # one write holds the new pair: never the new access token with the old refresh token
    rt.store.put("cloud", access_token=access, refresh_token=refresh, expires_in=lifetime,
                 at=None, cps="registered", clec="")
    return lifetime


async def session(rt):
    """Register with the `at` (once), then keep a valid access token,
    refreshing it before it expires."""
    import asyncio

    from onboard.clouds import ERR_CONFIG, Rejected, renew_margin

    cfg = rt.config
    client_id = cfg.get("client_id", "onboard-device")
    cloud = rt.store.get("cloud")
    try:
        if cloud.get("refresh_token"):
            form = {"grant_type": "refresh_token", "client_id": client_id,
                    "refresh_token": cloud["refresh_token"]}
        elif cloud.get("at"):
            rt.store.put("cloud", cps="registering")
            form = {"grant_type": "authorization_code", "client_id": client_id,
                    "code": cloud["at"]}
        else:
            raise Rejected("config", ERR_CONFIG)
        lifetime = await _token(rt, form)
    except Rejected:
        rt.store.put("cloud", cps="failed", clec="authorization refused")
        raise
    rt.set_error(0)
    rt.set_state("RUNNING")
    while not rt.setup_requested:
        await asyncio.sleep(max(1, lifetime - renew_margin(lifetime)))
        cloud = rt.store.get("cloud")
        lifetime = await _token(rt, {"grant_type": "refresh_token", "client_id": client_id,
                                     "refresh_token": cloud["refresh_token"]})
        rt.note(renewed=True)
