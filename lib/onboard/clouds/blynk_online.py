# Blynk's online part (onboard.clouds.blynk reaches it by name): the token's
# activation and the MQTT link (start), and the downlinks it handles.
from micropython import const

# onboard.codes' values, folded in at compile time (the module is not loaded)
_ERR_CONFIG = const(700)


def redirect(payload):
    """Cloud fields from a downlink/redirect: "host:port", "mqtts://host:port"
    or "mqtt://host:port" (also "tls://" and "tcp://", the schemes Blynk's
    docs named before 2024, which its ESP-IDF sample still takes); None when
    it is not one (a WebSocket's ws:// or wss:// included)."""
    try:
        text = payload.decode()
    except UnicodeError:
        return None
    scheme, _, target = text.rpartition("://")
    host, _, port = target.strip("/").rpartition(":")
    try:
        port = int(port)
    except ValueError:
        return None
    if host and len(host) <= 64 and 0 < port < 65536 and scheme in (
            "", "mqtt", "mqtts", "tcp", "tls"):
        return {"host": host, "port": port, "tls": scheme not in ("mqtt", "tcp")}
    return None


def downlink(cloud, topic, msg):
    from onboard.cloud import HANDLED, REBOOT, RECONFIGURE, REDIRECT

    if topic == b"downlink/redirect":
        fields = redirect(msg)
        return (REDIRECT, fields) if fields else (HANDLED,)
    if topic == b"downlink/reconfigure":
        return (RECONFIGURE,)
    if topic == b"downlink/reboot":
        return (REBOOT,)
    if topic == b"downlink/ping":
        return (HANDLED,)
    return None


async def start(rt):
    """Activate the token once; then MQTT as "device" with the token."""
    import json

    from onboard import clock
    from onboard.cloud import Rejected
    from onboard.cloudapi import fetch, judge

    cfg = rt.config
    cloud = rt.store.get("cloud")
    token = cloud.get("token")
    if not token:
        raise Rejected("config", _ERR_CONFIG)
    link = {}
    tmpl = cfg.get("tmpl_id", "")
    if not cloud.get("activated"):
        # any 2xx activates, whatever its body (the cloud documents none);
        # 400/401/403/404 refuse the token (703); the rest is worth a retry
        path = "/external/api/provision?token=%s&templateId=%s" % (token, tmpl)
        judge(await fetch(rt, "GET", path), "activation", (400, 401, 403, 404))
        link["store"] = {"activated": True}
    info = {"tmpl": tmpl, "ver": cfg.get("fw_ver", "0.0.0"), "build": clock.BUILD_DATE,
            "type": cfg.get("fw_type") or tmpl, "rxbuff": 1024}
    link["mqtt"] = ("device", token, cloud.get("host"), cloud.get("port"), cloud.get("tls"))
    link["topics"] = (b"downlink/#",)
    link["hello"] = ((b"info/mcu", json.dumps(info), False),)
    return link
