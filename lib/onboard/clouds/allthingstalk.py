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


def publish_state(rt, asset, value):
    """Report an asset's state; False when offline."""
    import json

    device_id = rt.store.get("cloud")["device_id"]
    return rt.publish("device/%s/asset/%s/state" % (device_id, asset),
                      json.dumps({"value": value}), qos=1)


def _command(rt, topic, msg):
    rt.deliver(topic, msg)
    if rt.on_message is None:
        # no application: acknowledge like an actuator, reporting the commanded value
        import json

        try:
            value = json.loads(msg)["value"]
        except (ValueError, KeyError, TypeError):
            return
        publish_state(rt, topic.decode().split("/")[3], value)


async def session(rt):
    from onboard.clouds import ERR_CONFIG, Rejected, mqtt_client, online

    cloud = rt.store.get("cloud")
    if not cloud.get("token") or not cloud.get("device_id"):
        raise Rejected("config", ERR_CONFIG)
    client = mqtt_client(rt, cloud["token"], cloud["token"])
    client.set_callback(lambda topic, msg: _command(rt, topic, msg))
    rt.reconnect = False
    rt.on_online = None
    await online(rt, client, ("device/%s/asset/+/command" % cloud["device_id"],))
