# Spoke Zone: a device JWT (x-access-token) whose claims give the device id
# and the MQTT prefix; renewed with POST /loginDevice before it expires
# (200: still valid, 201: a new token, stored before it is used).
from micropython import const

_TWELVE_HOURS = const(43200)

FIELDS = (("token", "Spoke Zone device token", True), ("uuid", "Device UUID", False))


def check(fields, config, current=None):
    from onboard.jwt import claims

    token = fields.get("token", "")
    c = claims(token, "token")
    if not isinstance(c.get("sub"), str) or not isinstance(c.get("exp"), int):
        raise ValueError("token: not a Spoke Zone device token")
    uuid = fields.get("uuid", "")
    if not 0 < len(uuid) <= 64:
        raise ValueError("uuid: required")
    out = {"token": token, "uuid": uuid}
    if fields.get("cpu_id"):
        out["cpu_id"] = fields["cpu_id"][:64]
    return out


async def renew(rt, clock):
    """POST /loginDevice; returns the token in use afterwards (stored when new)."""
    from onboard import http
    from onboard.clouds import body, judge

    cfg = rt.config
    cloud = rt.store.get("cloud")
    token = cloud["token"]
    resp = await http.arequest(
        "POST", cfg["api"] + "/loginDevice", ca=cfg.get("ca"), timeout=cfg.get("timeout_s", 10),
        headers={"x-access-token": token},
        json={"token": token, "cpu_id": cloud.get("cpu_id") or rt.uid(), "uuid": cloud["uuid"]})
    clock.learn(resp)
    judge(resp, "renewal")
    if resp.status_code == 201:
        (token,) = body(resp, "renewal", "token")
        rt.store.put("cloud", token=token)  # stored before it is used
        rt.note(renewed=True)
    return token


async def session(rt):
    """Renew when due (and once at start, which also sets the clock), stay
    online on MQTT with the current token, reconnect after each renewal."""
    import time

    from onboard.clouds import ERR_CONFIG, Clock, Rejected, mqtt_client, online, renew_margin
    from onboard.jwt import claims

    if not rt.store.get("cloud").get("token"):
        raise Rejected("config", ERR_CONFIG)
    clock = Clock()
    token = await renew(rt, clock)
    while not rt.setup_requested:
        c = claims(token)
        lifetime = c["exp"] - c.get("iat", c["exp"] - 3600)
        now = clock.now()
        left = c["exp"] - now if now is not None else lifetime
        if left < -_TWELVE_HOURS:
            raise Rejected("expired")
        due = time.ticks_add(time.ticks_ms(), max(0, left - renew_margin(lifetime)) * 1000)
        client = mqtt_client(rt, token, token)
        prefix = c.get("prefix", "spokezone/" + c["sub"])
        client.set_callback(lambda topic, msg, p=prefix: _downlink(rt, p, topic, msg))
        rt.reconnect = False

        def hello(client=client, prefix=prefix):
            # a retained birth message: the cloud sees which firmware is online
            client.publish(prefix + "/status", '{"status":"online","fw":"%s"}'
                           % rt.config.get("fw_ver", ""), retain=True, qos=1)

        rt.on_online = hello
        await online(rt, client, (prefix + "/down/#",), due)
        if rt.setup_requested or rt.reconnect:
            return
        token = await renew(rt, clock)


def _downlink(rt, prefix, topic, msg):
    if topic == (prefix + "/down/reconfigure").encode():
        rt.setup_requested = True
    else:
        rt.deliver(topic, msg)
