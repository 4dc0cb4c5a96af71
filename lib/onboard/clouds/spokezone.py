# Spoke Zone: a device JWT whose claims give the device id (a positive
# integer) and the MQTT prefix. Renewed with POST /loginDevice once less than
# 12 h are left (200: still valid, 201: a new token, checked, then stored
# before use); network errors, 429 and 5xx are retried (while the token
# still works, online with it meanwhile), 401/403 (or a token expired over
# 12 h ago) is 703; a token the server still calls valid is
# asked for again halfway to its end. When the next renewal is due is stored
# beside the token ("renew": [exp, at]), so a reboot does not renew again.
from micropython import const

# onboard.codes' values, folded in at compile time (the module is not loaded)
_ERR_CONFIG = const(700)
_TWELVE_HOURS = const(43200)
_MIN_WAIT = const(10)  # seconds: the least wait before asking again
_TAG = const("spokezone")

# cpu_id: the CPU ID the device was created with (Spoke Zone's /loginDevice
# checks it); left empty, the device's MAC in hex
FIELDS = (("token", "Spoke Zone device token", True), ("uuid", "Device UUID", False),
          ("cpu_id", "CPU ID (empty: the MAC)", False))


def _number(value):
    # a claim as a whole number, whatever its JSON type (int, float, digits)
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str) and "." in value:  # (int() and float() skip spaces)
        value = float(value)
    return int(value)


def token_claims(token, field="token"):
    """(exp, lifetime, device id, MQTT prefix) of a device token, read
    tolerantly; ValueError naming the field when it is not one."""
    from onboard.jwt import claims

    c = claims(token, field)
    try:
        exp = _number(c["exp"])
        device_id = _number(c["sub"] if "sub" in c else c["id"])
        if not 0 < device_id < 1 << 53:
            raise ValueError
        iat = _number(c["iat"]) if "iat" in c else exp - 3600
        prefix = c.get("prefix") or "mrs/d/%d" % device_id
        if not isinstance(prefix, str) or len(prefix) > 128:
            raise ValueError
    except (KeyError, ValueError, TypeError):
        raise ValueError("%s: not a Spoke Zone device token" % field) from None
    return exp, max(1, exp - iat), device_id, prefix


def topic(rt, name):
    """An application's topic: name under the device's MQTT prefix (its
    token's), where Spoke Zone lets the device publish."""
    return token_claims(rt.store.get("cloud")["token"])[3] + "/" + name


def check(fields, config, current=None):
    token = fields.get("token", "")
    token_claims(token)
    uuid = fields.get("uuid", "")
    if not 0 < len(uuid) <= 64:
        raise ValueError("uuid: required")
    out = {"token": token, "uuid": uuid, "renew": None}  # a new token: its own schedule
    if fields.get("cpu_id"):
        out["cpu_id"] = fields["cpu_id"][:64]
    return out


def due(cloud, exp):
    """When the stored token is to be renewed (Unix time): what was stored for
    it, else as soon as it is less than 12 h from expiry."""
    r = cloud.get("renew")
    if isinstance(r, list) and len(r) == 2 and r[0] == exp and isinstance(r[1], int):
        return r[1]
    return exp - _TWELVE_HOURS


async def renew(rt, cloud):
    """POST /loginDevice (no x-access-token): the token to use afterwards and
    whether it is new."""
    from onboard.cloud import Rejected, Transient
    from onboard.cloudapi import body, fetch, judge

    token = cloud["token"]
    resp = await fetch(rt, "POST", "/loginDevice",
                       json={"token": token, "cpu_id": cloud.get("cpu_id") or rt.uid(),
                             "uuid": cloud["uuid"]})
    code = resp.status_code
    if 400 <= code < 500 and code not in (401, 403, 408, 429):
        raise Rejected("renewal", _ERR_CONFIG)  # not worth retrying: the request is wrong
    judge(resp, "renewal")
    if code != 201:
        return token, False
    (new,) = body(resp, "renewal", "token")
    try:
        token_claims(new)
    except ValueError:
        raise Transient("renewal", 0) from None  # never store what does not check
    return new, True


def _keep(rt, e, exp, now):
    """A renewal that failed with e: the seconds until it is tried again
    while the session goes on with the current token, which still works (the
    API out of reach or its reply not one to take: a server error, a
    timeout, a reply cut short). The backoff's cap, the cloud's Retry-After
    when longer, never past the token's end; e raised again when it refused
    the token, when the time is unknown or the token would end first (the
    session then fails and is retried as any other). MRS's SDK keeps its live
    connection whatever its renewal does; an outage of the API alone does
    not take the device offline."""
    from onboard import log
    from onboard.cloud import Rejected, Transient

    if isinstance(e, (Rejected, MemoryError)) or now is None:
        raise e
    wait = min(rt.backoff[1], (exp - now) / 2)
    if isinstance(e, Transient) and len(e.args) > 1:
        wait = max(wait, e.args[1])
    if now + wait >= exp - 1:
        raise e
    log.warn(_TAG, "renewal failed: the token still works, again in %d s", int(wait))
    return wait


async def start(rt):
    """Renew when due (or while the time is unknown: the reply's Date sets
    it), then MQTT with the current token under the token's prefix."""
    from onboard import clock
    from onboard.cloud import Rejected, renew_margin

    cloud = rt.store.get("cloud")
    if not cloud.get("token") or not cloud.get("uuid"):
        raise Rejected("config", _ERR_CONFIG)
    token = cloud["token"]
    exp, lifetime, _, prefix = token_claims(token)
    at = due(cloud, exp)
    now = clock.now()
    link = {}
    if now is None or now >= at:
        try:
            token, renewed = await renew(rt, cloud)
        except Exception as e:  # noqa: BLE001  (sorted by _keep)
            wait = _keep(rt, e, exp, now)
            now = clock.now()
            at = now + wait
        else:
            exp, lifetime, _, prefix = token_claims(token)
            now = clock.now()
            margin = renew_margin(lifetime)
            end = exp - margin  # near its end
            # a new token: 12 h before its end, or near its end when it lives less
            # than that. One the server still calls valid (its clock a moment
            # behind ours at the 12 h mark, or its rule another): halfway to near
            # its end, so the time left to renew in stays wide (each such answer
            # halves the wait: few asks reach it). Near its end already (a server
            # that keeps calling it valid, or renews it with one that lives less
            # than its margin): half a margin later, at least _MIN_WAIT s, never
            # again at once (no storm of requests and flash writes)
            at = end
            if now is not None:
                at = exp - _TWELVE_HOURS if renewed else (now + end + 1) // 2
                if at <= now:
                    at = end if end > now else now + max(margin // 2, _MIN_WAIT)
            link["store"] = {"token": token, "renew": [exp, at]} if renewed \
                else {"renew": [exp, at]}
            link["renewed"] = renewed
    left = at - now if now is not None else lifetime - renew_margin(lifetime)
    link.update({"mqtt": (token, token, None, None, None), "topics": (prefix + "/ctrl/#",),
                 # a retained birth message: the cloud sees which firmware is online
                 "hello": ((prefix + "/status", '{"status":"online","fw":"%s"}'
                            % rt.config.get("fw_ver", ""), True),),
                 "renew_s": max(0, left),
                 "keepalive": 20})  # (MRS's own SDK's, live_data_transport.dart)
    return link


def downlink(cloud, topic, msg):
    from onboard.cloud import RECONFIGURE

    if topic.endswith(b"/ctrl/reconfigure"):
        return (RECONFIGURE,)
    return None
