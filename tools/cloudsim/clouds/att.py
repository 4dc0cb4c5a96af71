"""AllThingsTalk: OAuth2 password login with an MFA step and refresh tokens
for users; device tokens ("maker:...", the MQTT user name with any password)
and ground tokens with their scopes; assets made with
PUT /device/{id}/asset/{name} {title, is, profile: {type}}."""

import json
import secrets
from datetime import datetime, timezone
from email.utils import formatdate

from ..web import HttpError, need

USERS = {"alice": {"password": "alice-password", "mfa": "246810", "id": "user-alice"}}
CLIENT_IDS = ("web", "mobile", "postman")
# the profile types AllThingsTalk's WiFi SDK lets a device make an asset with
TYPES = ("boolean", "string", "integer", "number", "object", "array", "location")


class AllThingsTalk:
    def __init__(self, sim):
        self.sim = sim
        self.pending = {}  # MfaUid -> username
        self.access = {}  # user access token -> {"user", "exp"}
        self.refresh = {}  # refresh token -> username
        self.devices = {}  # device id -> {"ground", "token", "name"}
        self.grounds = {}  # ground id -> ground token
        for ground, names in (("ground-1", ("thermo-1", "thermo-2")), ("ground-2", ("door-1",))):
            self.grounds[ground] = "gt-" + secrets.token_urlsafe(18)
            for name in names:
                self.add_device(ground, name)

    def routes(self, r):
        r.add("POST", "/att/login", self.login)
        r.add("GET", r"/att/device/(?P<device_id>[^/]+)", self.device)
        r.add("GET", r"/att/ground/(?P<ground>[^/]+)/devices", self.ground_devices)
        r.add("POST", r"/att/ground/(?P<ground>[^/]+)/devices", self.create_device)
        r.add("PUT", r"/att/device/(?P<device_id>[^/]+)/asset/(?P<name>[A-Za-z0-9_-]{1,64})",
              self.put_asset)
        r.add("GET", r"/att/device/(?P<device_id>[^/]+)/assets", self.assets)

    def add_device(self, ground, name):
        device_id = secrets.token_hex(6)
        token = "maker:" + secrets.token_urlsafe(24)
        self.devices[device_id] = {"ground": ground, "token": token, "name": name,
                                   "assets": {}}
        # the token is the broker's user name, any password (the broker's login front)
        self.sim.mqtt_identities[("att", token)] = device_id
        self.sim.broker.allow(token, None, (f"device/{device_id}/#",))  # (its device's only)
        return device_id

    def downlink_topic(self, device_id, name):
        return f"device/{device_id}/asset/{name}/command", None

    def downlink_payload(self, payload):
        """The command the cloud publishes for one asked for with {"value": v}:
        {"at": when, "value": v}, as AllThingsTalk's SDKs read a command (the
        WiFi and LTE-M SDKs take both fields; its Go SDK parses "at" as an
        RFC 3339 time). ValueError when what was asked has no value."""
        try:
            doc = json.loads(payload)
            value = doc["value"]
        except (ValueError, TypeError, KeyError):
            raise ValueError("payload: a JSON object with a value") from None
        at = datetime.fromtimestamp(self.sim.now(), timezone.utc)
        return json.dumps({"at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                           "value": value})

    def _tokens(self, username):
        lifetime = self.sim.lifetime("att")
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        now = self.sim.now()
        self.access[access] = {"user": username, "exp": now + lifetime}
        self.refresh[refresh] = username
        return 200, {"access_token": access, "token_type": "bearer", "expires_in": lifetime,
                     "refresh_token": refresh, "as:client_id": "web", "userName": username,
                     ".issued": formatdate(now, usegmt=True),
                     ".expires": formatdate(now + lifetime, usegmt=True)}

    def login(self, req):
        doc = req.fields()
        grant, client_id = need(doc, "grant_type", "client_id")
        if client_id not in CLIENT_IDS:
            raise HttpError(400, "client_id: one of web, mobile, postman")
        with self.sim.lock:
            if grant == "password":
                username, password = need(doc, "username", "password")
                user = USERS.get(username)
                if not user or not secrets.compare_digest(user["password"], password):
                    raise HttpError(401, "wrong username or password")
                mfa_uid = secrets.token_urlsafe(12)
                self.pending[mfa_uid] = username
                return 200, {"MfaUid": mfa_uid, "UserId": user["id"]}
            if grant == "mfa":
                mfa_uid, user_id, code = need(doc, "mfa_uid", "user_id", "code")
                username = self.pending.get(mfa_uid)
                user = USERS.get(username or "")
                if not user or user["id"] != user_id or not secrets.compare_digest(
                        user["mfa"], code):
                    raise HttpError(401, "wrong MFA code or unknown MfaUid")
                del self.pending[mfa_uid]
                return self._tokens(username)
            if grant == "refresh_token":
                (refresh,) = need(doc, "refresh_token")
                username = self.refresh.pop(refresh, None)
                if not username:
                    raise HttpError(401, "refresh_token: unknown or already used")
                return self._tokens(username)
        raise HttpError(400, "grant_type: password, mfa or refresh_token")

    def _who(self, req):
        # -> ("user", name) | ("ground", id) | ("device", id); 401 when none
        token = req.bearer() or ""
        held = self.access.get(token)
        if held and held["exp"] >= self.sim.now():
            return "user", held["user"]
        for ground, gt in self.grounds.items():
            if secrets.compare_digest(gt, token):
                return "ground", ground
        for device_id, dev in self.devices.items():
            if secrets.compare_digest(dev["token"], token):
                return "device", device_id
        raise HttpError(401, "missing, invalid or expired Bearer token")

    def device(self, req, device_id):
        dev = self._device_access(req, device_id)
        return 200, {"id": device_id, "name": dev["name"], "ground": dev["ground"]}

    def _device_access(self, req, device_id):
        # a known token: 404 for a device there is not, 403 for one it may
        # not use (the two replies AllThingsTalk's Node.js SDK names for its
        # asset PUT: "Device is not found", "token doesn't match device Id")
        kind, who = self._who(req)
        dev = self.devices.get(device_id)
        if not dev:
            raise HttpError(404, "no such device")
        if not (kind == "user" or (kind == "ground" and dev["ground"] == who)
                or (kind == "device" and who == device_id)):
            raise HttpError(403, "this token has no access to that device")
        return dev

    def put_asset(self, req, device_id, name):
        """Create or update an asset: 201 when new, 200 when it was there."""
        dev = self._device_access(req, device_id)
        doc = req.json()
        kind, profile = doc.get("is"), doc.get("profile")
        if kind not in ("sensor", "actuator", "virtual"):
            raise HttpError(400, "is: sensor, actuator or virtual")
        if not isinstance(profile, dict) or profile.get("type") not in TYPES:
            raise HttpError(400, f"profile: an object with a type ({', '.join(TYPES)})")
        title = doc.get("title", name)
        if not isinstance(title, str) or len(title) > 128:
            raise HttpError(400, "title: text up to 128 characters")
        with self.sim.lock:
            new = name not in dev["assets"]
            asset = dev["assets"].setdefault(name, {"puts": 0})
            asset.update({"name": name, "title": title, "is": kind, "profile": profile})
            asset["puts"] += 1
        return (201 if new else 200), {k: v for k, v in asset.items() if k != "puts"}

    def assets(self, req, device_id):
        dev = self._device_access(req, device_id)
        return 200, [{k: v for k, v in a.items() if k != "puts"}
                     for a in dev["assets"].values()]

    def ground_devices(self, req, ground):
        kind, who = self._who(req)
        if ground not in self.grounds or not (kind == "user" or (kind, who) == ("ground", ground)):
            raise HttpError(403, "this token has no access to that ground")
        return 200, [{"id": d, "name": v["name"]} for d, v in self.devices.items()
                     if v["ground"] == ground]

    def create_device(self, req, ground):
        kind, _ = self._who(req)
        if kind != "user" or ground not in self.grounds:
            raise HttpError(403, "only a user can create devices in a ground")
        (name,) = need(req.json(), "name")
        with self.sim.lock:
            device_id = self.add_device(ground, name)
        return 201, {"id": device_id, "token": self.devices[device_id]["token"]}
