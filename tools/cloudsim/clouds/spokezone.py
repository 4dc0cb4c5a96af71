"""Spoke Zone: user and device JWTs in x-access-token, device creation,
device secrets, and /loginDevice renewal with its 12-hour rules."""

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
        self.devices = {}  # id -> {"cpuId", "uuid", "token"}

    def routes(self, r):
        r.add("POST", "/spokezone/login", self.login)
        r.add("POST", "/spokezone/loginDevice", self.login_device)
        r.add("POST", "/spokezone/api/v2/devices", self.create_device)
        r.add("GET", r"/spokezone/api/v2/devices/(?P<device_id>[^/]+)/secrets", self.secrets)

    def downlink_topic(self, device_id, name):
        return f"spokezone/{device_id}/down/{name}", None

    def device_token(self, device_id):
        now = int(self.sim.now())
        claims = {"type": "device", "sub": device_id, "prefix": f"spokezone/{device_id}",
                  "iat": now, "exp": now + self.sim.lifetime("spokezone"),
                  "jti": secrets.token_hex(8)}  # two tokens issued in one second differ
        token = jwt.encode(claims, self.key)
        old = self.devices[device_id].get("token")
        self.devices[device_id]["token"] = token
        if old:
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
        return 200, {"token": token}

    def create_device(self, req):
        self._user(req)
        doc = req.json()
        (cpu_id,) = need(doc, "cpuId")
        device_id = uuid.uuid4().hex[:12]
        with self.sim.lock:
            self.devices[device_id] = {"cpuId": cpu_id, "uuid": str(uuid.uuid4()),
                                       "name": doc.get("name", device_id)}
            token = self.device_token(device_id)
        return 201, {"id": device_id, "cpuId": cpu_id, "uuid": self.devices[device_id]["uuid"],
                     "token": token}

    def secrets(self, req, device_id):
        _, role = self._user(req)
        dev = self.devices.get(device_id)
        if dev is None:
            raise HttpError(404, "no such device")
        if role != "super":
            (cpu_id,) = need(req.json(), "cpuId")
            if cpu_id != dev["cpuId"]:
                raise HttpError(403, "cpuId does not match the device")
        with self.sim.lock:
            token = self.device_token(device_id)
        return 200, {"cpuId": dev["cpuId"], "uuid": dev["uuid"], "token": token}

    def login_device(self, req):
        token, cpu_id, dev_uuid = need(req.json(), "token", "cpu_id", "uuid")
        # every API request carries its token in x-access-token
        if req.headers.get("x-access-token") != token:
            raise HttpError(401, "x-access-token: missing or not the token being renewed")
        claims = jwt.decode(token, self.key)
        dev = self.devices.get(claims.get("sub")) if claims else None
        if not dev or claims.get("type") != "device" or dev.get("token") != token:
            raise HttpError(401, "token: not a current device token")
        if dev["cpuId"] != cpu_id or dev["uuid"] != dev_uuid:
            raise HttpError(401, "cpu_id or uuid does not match the device")
        left = claims["exp"] - self.sim.now()
        if left > TWELVE_HOURS:
            return 200, {"message": "token still valid"}
        if left < -TWELVE_HOURS:
            raise HttpError(401, "token expired more than 12 hours ago")
        with self.sim.lock:
            return 201, {"token": self.device_token(claims["sub"])}
