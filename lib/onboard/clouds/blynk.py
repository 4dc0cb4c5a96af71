# Blynk: the auth token from the portal (field "blynk"), activation, and MQTT.
# Setup mode needs only FIELDS and check, which are here; start, downlink and
# redirect, which only the cloud session needs, are in blynk_online, loaded
# on their first use (module __getattr__) and let go of with the session.
import re
from micropython import const

_TOKEN = re.compile("^[-_a-zA-Z0-9]+$")
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


def __getattr__(name):
    # redirect, downlink, start: the profile's online part (onboard.clouds.
    # blynk_online), loaded by the cloud session and let go of with it, so
    # setup mode does not hold it
    if name in ("redirect", "downlink", "start"):
        from onboard.clouds import blynk_online

        return getattr(blynk_online, name)
    raise AttributeError(name)
