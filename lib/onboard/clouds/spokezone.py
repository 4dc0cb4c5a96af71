# Spoke Zone: a device JWT (x-access-token) whose claims give the device id
# and the MQTT prefix; renewed with POST /loginDevice before it expires
# (200: still valid, 201: a new token, checked, then stored before use).
from micropython import const

_TWELVE_HOURS = const(43200)

FIELDS = (("token", "Spoke Zone device token", True), ("uuid", "Device UUID", False))


def _number(value):
    # a claim as a whole number, whatever its JSON type (int, float, digits)
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, str):
        value = value.strip()
    return int(float(value)) if isinstance(value, float) else int(value)


def token_claims(token, field="token"):
    """(exp, lifetime, device id text, MQTT prefix) of a device token, read
    tolerantly; ValueError naming the field when it is not one."""
    from onboard.jwt import claims

    c = claims(token, field)
    try:
        exp = _number(c["exp"])
        sub = c.get("sub", c.get("id"))
        if isinstance(sub, float):
            sub = int(sub)
        sub = str(sub)
        if sub in ("", "None", "True", "False") or len(sub) > 64:
            raise ValueError
        iat = _number(c["iat"]) if "iat" in c else exp - 3600
        prefix = c.get("prefix") or "spokezone/" + sub
        if not isinstance(prefix, str) or len(prefix) > 128:
            raise ValueError
    except (KeyError, ValueError, TypeError):
        raise ValueError("%s: not a Spoke Zone device token" % field) from None
    return exp, max(1, exp - iat), sub, prefix


def check(fields, config, current=None):
    token = fields.get("token", "")
    token_claims(token)
    uuid = fields.get("uuid", "")
    if not 0 < len(uuid) <= 64:
        raise ValueError("uuid: required")
    out = {"token": token, "uuid": uuid}
    if fields.get("cpu_id"):
        out["cpu_id"] = fields["cpu_id"][:64]
    return out


async def renew(rt, cloud):
    """POST /loginDevice: the token to use afterwards and whether it is new."""
    from onboard.clouds import Transient, body, fetch, judge

    token = cloud["token"]
    resp = await fetch(rt, "POST", "/loginDevice", headers={"x-access-token": token},
                       json={"token": token, "cpu_id": cloud.get("cpu_id") or rt.uid(),
                             "uuid": cloud["uuid"]})
    judge(resp, "renewal")
    if resp.status_code != 201:
        return token, False
    (new,) = body(resp, "renewal", "token")
    try:
        token_claims(new)
    except ValueError:
        raise Transient("renewal", 0) from None  # never store what does not check
    return new, True


async def start(rt):
    """Renew (at start, which also sets the clock, and when due), then MQTT
    with the current token under the token's prefix."""
    from onboard import clock
    from onboard.clouds import Rejected, renew_margin
    from onboard.codes import ERR_CONFIG

    cloud = rt.store.get("cloud")
    if not cloud.get("token") or not cloud.get("uuid"):
        raise Rejected("config", ERR_CONFIG)
    token, renewed = await renew(rt, cloud)
    exp, lifetime, _, prefix = token_claims(token)
    now = clock.now()
    left = exp - now if now is not None else lifetime
    if left < -_TWELVE_HOURS:
        raise Rejected("expired")
    link = {"mqtt": (token, token, None, None, None), "topics": (prefix + "/down/#",),
            # a retained birth message: the cloud sees which firmware is online
            "hello": ((prefix + "/status", '{"status":"online","fw":"%s"}'
                       % rt.config.get("fw_ver", ""), True),),
            "renew_s": max(0, left - renew_margin(lifetime)), "prefix": prefix}
    if renewed:
        link["store"] = {"token": token}
        link["renewed"] = True
    return link


def downlink(cloud, topic, msg):
    from onboard.clouds import RECONFIGURE

    if topic.endswith(b"/down/reconfigure"):
        return (RECONFIGURE,)
    return None
