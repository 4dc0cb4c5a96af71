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


def check(fields, config):
    """Cloud fields of a /config request, checked; ValueError names the field."""
    token = fields.get("blynk", "")
    if len(token) != _TOKEN_LEN or not _TOKEN.match(token):
        raise ValueError("blynk: must be 32 characters of A-Z a-z 0-9 - _")
    cloud = {"token": token}
    check_host(fields, cloud)
    return cloud
