"""Blynk device provisioning: provision/reconfigure/reprovision with the
documented permissions, and the device's /external/api/provision."""

import secrets
import string

from ..web import HttpError, need

ALPHABET = string.ascii_letters + string.digits + "-_"

# Platform users (Bearer tokens) and their permissions; the admin token has all.
USERS = {
    "provisioner-token": (2, {"PROVISION_DEVICES", "OWN_DEVICES_VIEW"}),
    "org-provisioner-token": (3, {"PROVISION_DEVICES", "ORG_VIEW_USERS", "ORG_DEVICES_VIEW"}),
    "viewer-token": (4, {"ORG_DEVICES_VIEW", "OWN_DEVICES_VIEW"}),
}
ALL = {"PROVISION_DEVICES", "ORG_VIEW_USERS", "OWN_DEVICES_VIEW", "ORG_DEVICES_VIEW"}
P = "/blynk/api/v1/organization/device/provision"


def new_token():
    return "".join(secrets.choice(ALPHABET) for _ in range(32))


class Blynk:
    def __init__(self, sim):
        self.sim = sim
        self.devices = {}  # id -> {"owner", "org", "token", "active", "template"}
        self.next_id = 101
        self.sent = []  # (device id, downlink) for the device's MQTT topics
        # device id -> (payload of a downlink/redirect at its next login, whether
        # at every login after it too)
        self.redirects = {}

    def redirect_next_login(self, device_id, target, every=False):
        """Send downlink/redirect (target: "host:port" or "mqtt[s]://host:port")
        right after the device's next MQTT login, once (every: after each,
        as a cloud redirecting in a loop would)."""
        self.redirects[int(device_id)] = (target, every)

    def redirect_at_login(self, device_id):
        """The downlink/redirect payload for this login of the device, or None."""
        target, every = self.redirects.get(device_id, (None, False))
        if not every:
            self.redirects.pop(device_id, None)
        return target

    def routes(self, r):
        r.add("POST", P + "/token", self.provision_token)
        r.add("POST", P + "/reconfigure", self.reconfigure)
        r.add("POST", P + "/reprovision/token", self.reprovision)
        r.add("GET", "/blynk/external/api/provision", self.activate)

    def _user(self, req):
        token = req.bearer()
        if token and secrets.compare_digest(token, self.sim.admin_token):
            return 1, ALL
        if token in USERS:
            return USERS[token]
        raise HttpError(401, "missing or invalid Bearer token")

    def _device(self, req, user_id, perms):
        if "PROVISION_DEVICES" not in perms:
            raise HttpError(403, "PROVISION_DEVICES permission required")
        (device_id,) = need(req.json(), "deviceId", kind=int)
        dev = self.devices.get(device_id)
        if dev is None:
            raise HttpError(404, "deviceId: no such device")
        if "ORG_DEVICES_VIEW" not in perms and not (
                "OWN_DEVICES_VIEW" in perms and dev["owner"] == user_id):
            raise HttpError(403, "OWN_DEVICES_VIEW or ORG_DEVICES_VIEW permission required")
        return device_id, dev

    def provision_token(self, req):
        user_id, perms = self._user(req)
        if "PROVISION_DEVICES" not in perms:
            raise HttpError(403, "PROVISION_DEVICES permission required")
        org, owner = need(req.json(), "orgId", "ownerId", kind=int)
        if owner != user_id and "ORG_VIEW_USERS" not in perms:
            raise HttpError(403, "ORG_VIEW_USERS permission required for another owner")
        with self.sim.lock:
            device_id = self.next_id
            self.next_id += 1
            self.devices[device_id] = {"owner": owner, "org": org, "token": new_token(),
                                       "active": False, "template": None}
        return 200, {"token": self.devices[device_id]["token"], "deviceId": device_id}

    def reconfigure(self, req):
        device_id, dev = self._device(req, *self._user(req))
        online = self.sim.downlink("blynk", device_id, "reconfigure", "")
        return 200, {"deviceIsOffline": not online}

    def reprovision(self, req):
        device_id, dev = self._device(req, *self._user(req))
        with self.sim.lock:
            old = dev["token"]
            dev["token"] = new_token()
            dev["active"] = False
        self.sim.revoke_mqtt("blynk", old)  # closes its MQTT sessions too
        return 200, {"token": dev["token"], "deviceId": device_id}

    def mqtt_login(self, username, password):
        """The device id for an MQTT login as user "device" with an active token."""
        if username != "device":
            return None
        device_id, dev = self.by_token(password)
        return device_id if dev and dev["active"] else None

    def downlink_topic(self, device_id, name):
        device_id = int(device_id)
        online = self.sim.front.online(device_id) if self.sim.front else False
        return f"blynk/{device_id}/downlink/{name}", online

    def downlink_qos(self, name):
        # Blynk's device MQTT API: downlink/ping always at QoS 1, for the
        # device to answer with a PUBACK; redirect, OTA and diag at QoS 0
        # (the rest unstated: QoS 0 here)
        return 1 if name == "ping" else 0

    def by_token(self, token):
        for device_id, dev in self.devices.items():
            if token and secrets.compare_digest(dev["token"], token):
                return device_id, dev
        return None, None

    def activate(self, req):
        # as Blynk documents it: 200 with no body; 400 {"error":{"message":...}}
        token = req.query.get("token", "")
        template = req.query.get("templateId", "")
        device_id, dev = self.by_token(token)
        if dev is None:
            return 400, {"error": {"message": "Invalid token."}}
        if not template.startswith("TMPL"):
            return 400, {"error": {"message": "Invalid template id."}}
        with self.sim.lock:
            dev["active"] = True
            dev["template"] = template
        self.sim.allow_mqtt("blynk", token, device_id)
        return 200, None
