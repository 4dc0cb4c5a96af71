"""Spoke Zone: user and device JWTs in x-access-token, device creation
(positive integer ids), device secrets, and /loginDevice renewal with its
12-hour rules: any token of the device signed here and expired no longer
than 12 h ago renews (earlier tokens too), with no x-access-token header."""

import itertools
import secrets
import uuid

from .. import jwt
from ..web import HttpError, need

TWELVE_HOURS = 12 * 3600
USERS = {"super": ("super-password", "super"), "operator": ("operator-password", "user")}


class SpokeZone:
    def __init__(self, sim):
        self.sim = sim
        self.key = secrets.token_bytes(32)
        self.devices = {}  # id (int) -> {"cpuId", "uuid", "token"}
        self._ids = itertools.count(1001)

    def routes(self, r):
        r.add("POST", "/spokezone/login", self.login)
        r.add("POST", "/spokezone/loginDevice", self.login_device)
        r.add("POST", "/spokezone/api/v2/devices", self.create_device)
        r.add("GET", r"/spokezone/api/v2/devices/(?P<device_id>\d{1,12})/secrets", self.secrets)

    @staticmethod
    def prefix(device_id):
        return f"mrs/d/{device_id}"

    def downlink_topic(self, device_id, name):
        # commands to devices on Spoke Zone's broker go under ctrl/, as its docs
        # ask of a model's commands (docs.spoke.zone/mqtt-command), under the
        # device's own prefix, as MRS's SDK publishes the device's data under mon/
        return f"{self.prefix(device_id)}/ctrl/{name}", None

    def device_token(self, device_id, rotate=False):
        """A new token for the device. rotate (new secrets): earlier tokens
        can no longer log in to the broker; a renewal leaves them be until
        they expire, as a device may come back with one of them."""
        now = int(self.sim.now())
        claims = {"type": "device", "sub": device_id, "prefix": self.prefix(device_id),
                  "iat": now, "exp": now + self.sim.lifetime("spokezone"),
                  "jti": secrets.token_hex(8)}  # two tokens issued in one second differ
        token = jwt.encode(claims, self.key)
        old = self.devices[device_id].get("token")
        self.devices[device_id]["token"] = token
        if old and rotate:
            self.sim.revoke_mqtt("spokezone", old)
        self.sim.allow_mqtt("spokezone", token, device_id)
        return token

    def _user(self, req):
        token = req.headers.get("x-access-token")
        if token and secrets.compare_digest(token, self.sim.admin_token):
            return "admin", "super"
        claims = jwt.decode(token or "", self.key)
        if not claims or claims.get("type") != "user" or claims["exp"] < self.sim.now():
            raise HttpError(401, "x-access-token: missing, invalid or expired user token")
        return claims["sub"], claims["role"]

    def login(self, req):
        username, password = need(req.json(), "username", "password")
        user = USERS.get(username)
        if not user or not secrets.compare_digest(user[0], password):
            raise HttpError(401, "wrong username or password")
        now = int(self.sim.now())
        token = jwt.encode({"type": "user", "sub": username, "role": user[1], "iat": now,
                            "exp": now + 24 * 3600}, self.key)
        return 200, {"token": token, "expires": now + 24 * 3600}

    def create_device(self, req):
        self._user(req)
        doc = req.json()
        (cpu_id,) = need(doc, "cpuId")
        with self.sim.lock:
            device_id = next(self._ids)
            self.devices[device_id] = {"cpuId": cpu_id, "uuid": str(uuid.uuid4()),
                                       "name": doc.get("name", device_id)}
            token = self.device_token(device_id)
        return 201, {"id": device_id, "cpuId": cpu_id, "uuid": self.devices[device_id]["uuid"],
                     "token": token}

    def secrets(self, req, device_id):
        _, role = self._user(req)
        device_id = int(device_id)
        dev = self.devices.get(device_id)
        if dev is None:
            raise HttpError(404, "no such device")
        if role != "super":
            (cpu_id,) = need(req.json(), "cpuId")
            if cpu_id != dev["cpuId"]:
                raise HttpError(403, "cpuId does not match the device")
        with self.sim.lock:
            token = self.device_token(device_id, rotate=True)
        return 200, {"cpuId": dev["cpuId"], "uuid": dev["uuid"], "token": token}

    def login_device(self, req):
        doc = req.json()
        if not isinstance(doc, dict):
            raise HttpError(400, "body: a JSON object with token, cpu_id and uuid")
        token, cpu_id, dev_uuid = need(doc, "token", "cpu_id", "uuid")
        claims = jwt.decode(token, self.key)  # signed here, or None
        sub = claims.get("sub") if claims else None
        dev = self.devices.get(sub) if isinstance(sub, int) else None
        # Spoke Zone's renewal page: "If one of the fields was missing or given
        # an incorrect value, the endpoint will return a 400 response"
        if not dev or claims.get("type") != "device":
            raise HttpError(400, "token: not a device token of this service")
        if dev["cpuId"] != cpu_id or dev["uuid"] != dev_uuid:
            raise HttpError(400, "cpu_id or uuid does not match the device")
        left = claims["exp"] - self.sim.now()
        if left > TWELVE_HOURS:
            return 200, {"message": "token still valid"}
        if left < -TWELVE_HOURS:
            raise HttpError(401, "token expired more than 12 hours ago")
        with self.sim.lock:
            return 201, {"token": self.device_token(sub)}
