# AllThingsTalk: a device id and a device token ("maker:..."); MQTT with the
# token as the user name (any password). The product's assets (config
# "assets": {name: {"is", "type", "title"}}) are made once with
# PUT {api}/device/{id}/asset/{name} before the first publish, and again
# when the config describes one otherwise (one the API does not make is
# asked for again at the next session, online meanwhile); states go to
# device/{id}/asset/{name}/state as {"value": ...} or, several at once, to
# device/{id}/state as {name: {"value": ...}}; commands come from
# device/{id}/asset/{name}/command.
import re
from micropython import const

# onboard.codes' values, folded in at compile time (the module is not loaded)
_ERR_CONFIG = const(700)
FIELDS = (("device_id", "Device ID", False), ("token", "Device token", True))


def check(fields, config, current=None):
    device_id = fields.get("device_id", "")
    token = fields.get("token", "")
    if not re.match("^[A-Za-z0-9_-]+$", device_id) or len(device_id) > 64:
        raise ValueError("device_id: letters, digits, - and _ only")
    if not 8 <= len(token) <= 256:
        raise ValueError("token: must be 8-256 characters")
    return {"device_id": device_id, "token": token, "assets": None}  # made again for it


def state_topic(device_id, asset):
    return "device/%s/asset/%s/state" % (device_id, asset)


def publish_state(rt, asset, value):
    """Report an asset's state; False when offline."""
    import json

    device_id = rt.store.get("cloud")["device_id"]
    return rt.publish(state_topic(device_id, asset), json.dumps({"value": value}), qos=1)


def publish_states(rt, values):
    """Report several assets' states in one message ({name: value}); False
    when offline."""
    import json

    device_id = rt.store.get("cloud")["device_id"]
    doc = {}
    for k, v in values.items():  # (a loop: a comprehension is a function in RAM)
        doc[k] = {"value": v}
    return rt.publish("device/%s/state" % device_id, json.dumps(doc), qos=1)


def downlink(cloud, topic, msg):
    """A command is the application's; with none listening, the runtime
    answers like an actuator with this (the commanded value as the state)."""
    return None


def echo(cloud, topic, msg):
    """The state that acknowledges a command, or None."""
    import json

    try:
        value = json.loads(msg)["value"]
        asset = topic.decode().split("/")[3]
    except (ValueError, KeyError, TypeError, IndexError, UnicodeError):
        return None
    return state_topic(cloud["device_id"], asset), json.dumps({"value": value})


async def start(rt):
    from onboard.cloud import Rejected

    cloud = rt.store.get("cloud")
    if not cloud.get("token") or not cloud.get("device_id"):
        raise Rejected("config", _ERR_CONFIG)
    # keepalive: 15 s, as AllThingsTalk's SDK for ESP32 boards (its WiFi SDK,
    # PubSubClient's default); its others differ (LTE-M 300, Python 60, Go 10)
    link = {"mqtt": (cloud["token"], "x", None, None, None),
            "topics": ("device/%s/asset/+/command" % cloud["device_id"],), "keepalive": 15}
    if rt.config.get("assets"):
        # (its own module: loaded for the call, let go of before it runs, so
        # neither setup mode nor the session holds the asset code)
        from onboard.clouds import allthingstalk_assets
        from onboard.store import let_go

        let_go("clouds.allthingstalk_assets")
        link["store"] = await allthingstalk_assets.make(rt, cloud)
    return link
