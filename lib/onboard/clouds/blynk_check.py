# Blynk's check of the portal's fields (setup mode's): the profile
# (onboard.clouds.blynk) loads this module for the one call and lets go of it
# at once, so neither the store's write that follows nor the cloud session
# holds this code.
import re
from micropython import const

_TOKEN = re.compile("^[-_a-zA-Z0-9]+$")
_TOKEN_LEN = const(32)


def check(fields, config, current=None):
    """Cloud fields of a /config request, checked; ValueError names the field."""
    token = fields.get("blynk", "")
    if len(token) != _TOKEN_LEN or not _TOKEN.match(token):
        raise ValueError("blynk: must be 32 characters of A-Z a-z 0-9 - _")
    cloud = {"token": token}
    if token != (current or {}).get("token"):
        cloud["activated"] = None  # a new token is activated again
    # host: the MQTT host from now on (a redirect's port, scheme and the
    # host it came from are forgotten). port, port_ssl: the app's
    # Blynk-protocol ports, kept as app_port, app_port_ssl; never the MQTT
    # port (the config's, 8883).
    host = fields.get("host", "")
    if host:
        if len(host) > 64 or not re.match("^[-.a-zA-Z0-9]+$", host):
            raise ValueError("host: not a host name")
        cloud["host"] = host
        cloud["port"] = cloud["tls"] = cloud["home"] = None
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
