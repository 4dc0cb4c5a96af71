# AllThingsTalk: a device id and a device token; MQTT with the token as the
# user name; states on device/{id}/asset/{name}/state as {"value": ...},
# commands from device/{id}/asset/{name}/command.
import re

FIELDS = (("device_id", "Device ID", False), ("token", "Device token", True))


def check(fields, config, current=None):
    device_id = fields.get("device_id", "")
    token = fields.get("token", "")
    if not re.match("^[A-Za-z0-9_-]+$", device_id) or len(device_id) > 64:
        raise ValueError("device_id: letters, digits, - and _ only")
    if not 8 <= len(token) <= 256:
        raise ValueError("token: must be 8-256 characters")
    return {"device_id": device_id, "token": token}


def state_topic(device_id, asset):
    return "device/%s/asset/%s/state" % (device_id, asset)


def publish_state(rt, asset, value):
    """Report an asset's state; False when offline."""
    import json

    device_id = rt.store.get("cloud")["device_id"]
    return rt.publish(state_topic(device_id, asset), json.dumps({"value": value}), qos=1)


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
    from onboard.clouds import Rejected
    from onboard.codes import ERR_CONFIG

    cloud = rt.store.get("cloud")
    if not cloud.get("token") or not cloud.get("device_id"):
        raise Rejected("config", ERR_CONFIG)
    return {"mqtt": (cloud["token"], cloud["token"], None, None, None),
            "topics": ("device/%s/asset/+/command" % cloud["device_id"],)}
