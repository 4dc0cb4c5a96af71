# Blynk: the auth token from the portal (field "blynk"), activation, and MQTT.
import re
from micropython import const

_TOKEN = re.compile("^[-_a-zA-Z0-9]+$")
_TOKEN_LEN = const(32)

# extra portal fields: (name, label, secret)
FIELDS = (("blynk", "Blynk auth token", True),)


def check_host(fields, cloud):
    host = fields.get("host", "")
    if host:
        if len(host) > 64 or not re.match("^[-.a-zA-Z0-9]+$", host):
            raise ValueError("host: not a host name")
        cloud["host"] = host
    for name in ("port", "port_ssl"):
        if fields.get(name):
            try:
                port = int(fields[name])
            except ValueError:
                port = 0
            if not 0 < port < 65536:
                raise ValueError("%s: not a port number" % name)
            cloud[name] = port


def check(fields, config, current=None):
    """Cloud fields of a /config request, checked; ValueError names the field."""
    token = fields.get("blynk", "")
    if len(token) != _TOKEN_LEN or not _TOKEN.match(token):
        raise ValueError("blynk: must be 32 characters of A-Z a-z 0-9 - _")
    cloud = {"token": token}
    if token != (current or {}).get("token"):
        cloud["activated"] = None  # a new token is activated again
    check_host(fields, cloud)
    return cloud


def _redirect(rt, payload):
    # "host:port", "mqtts://host:port" or "mqtt://host:port": stored, then followed
    text = payload.decode()
    scheme, _, target = text.rpartition("://")
    host, _, port = target.strip("/").rpartition(":")
    try:
        port = int(port)
    except ValueError:
        return
    if host and 0 < port < 65536 and scheme in ("", "mqtt", "mqtts"):
        rt.store.put("cloud", host=host, port=port, tls=scheme != "mqtt")
        rt.reconnect = True


def _downlink(rt, topic, msg):
    if topic == b"downlink/redirect":
        _redirect(rt, msg)
    elif topic == b"downlink/reconfigure":
        rt.setup_requested = True
    elif topic == b"downlink/reboot":
        rt.board.reboot()
    elif topic != b"downlink/ping":
        rt.deliver(topic, msg)


async def session(rt):
    """Activate the token once, then stay online on MQTT until told otherwise."""
    import json

    from onboard import http
    from onboard.clouds import ERR_CONFIG, Rejected, Transient, body, judge, mqtt_client, online

    cfg = rt.config
    cloud = rt.store.get("cloud")
    token = cloud.get("token")
    if not token:
        raise Rejected("config", ERR_CONFIG)
    if not cloud.get("activated"):
        url = "%s/external/api/provision?token=%s&templateId=%s" % (
            cfg["api"], token, cfg.get("tmpl_id", ""))
        resp = judge(await http.arequest("GET", url, ca=cfg.get("ca"),
                                         timeout=cfg.get("timeout_s", 10)), "activation")
        if body(resp, "activation", "status") != ["ok"]:
            raise Transient("activation", 0)
        rt.store.put("cloud", activated=True)
    client = mqtt_client(rt, "device", token, cloud.get("host"), cloud.get("port"),
                         cloud.get("tls"))
    client.set_callback(lambda topic, msg: _downlink(rt, topic, msg))
    rt.reconnect = False

    def hello():
        info = {"tmpl": cfg.get("tmpl_id", ""), "ver": cfg.get("fw_ver", "0.0.0"),
                "build": cfg.get("build", ""), "type": cfg.get("name", ""), "rxbuff": 1024}
        client.publish(b"info/mcu", json.dumps(info), retain=True, qos=1)

    rt.on_online = hello
    await online(rt, client, (b"downlink/#",))
