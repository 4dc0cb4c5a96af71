# Blynk: the auth token from the portal (field "blynk"), activation, and MQTT.
import re
from micropython import const

_TOKEN = re.compile("^[-_a-zA-Z0-9]+$")

# onboard.codes' values, folded in at compile time (the module is not loaded)
_ERR_CONFIG = const(700)
_TOKEN_LEN = const(32)

# extra portal fields: (name, label, secret)
FIELDS = (("blynk", "Blynk auth token", True),)


def check(fields, config, current=None):
    """Cloud fields of a /config request, checked; ValueError names the field."""
    token = fields.get("blynk", "")
    if len(token) != _TOKEN_LEN or not _TOKEN.match(token):
        raise ValueError("blynk: must be 32 characters of A-Z a-z 0-9 - _")
    cloud = {"token": token}
    if token != (current or {}).get("token"):
        cloud["activated"] = None  # a new token is activated again
    # host: the MQTT host from now on (a redirect's port and scheme are
    # forgotten). port, port_ssl: the app's Blynk-protocol ports, kept as
    # app_port, app_port_ssl; never the MQTT port (the config's, 8883).
    host = fields.get("host", "")
    if host:
        if len(host) > 64 or not re.match("^[-.a-zA-Z0-9]+$", host):
            raise ValueError("host: not a host name")
        cloud["host"] = host
        cloud["port"] = cloud["tls"] = None
    for name in ("port", "port_ssl"):
        if fields.get(name):
            try:
                port = int(fields[name])
            except ValueError:
                port = 0
            if not 0 < port < 65536:
                raise ValueError("%s: not a port number" % name)
            cloud["app_" + name] = port
    return cloud


def redirect(payload):
    """Cloud fields from a downlink/redirect: "host:port", "mqtts://host:port"
    or "mqtt://host:port"; None when it is not one."""
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
    if host and len(host) <= 64 and 0 < port < 65536 and scheme in ("", "mqtt", "mqtts"):
        return {"host": host, "port": port, "tls": scheme != "mqtt"}
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
    info = {"tmpl": tmpl, "ver": cfg.get("fw_ver", "0.0.0"), "build": clock.build_date(),
            "type": cfg.get("fw_type") or tmpl, "rxbuff": 1024}
    link["mqtt"] = ("device", token, cloud.get("host"), cloud.get("port"), cloud.get("tls"))
    link["topics"] = (b"downlink/#",)
    link["hello"] = ((b"info/mcu", json.dumps(info), False),)
    return link
