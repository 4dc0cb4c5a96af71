"""plgd: OAuth2 authorization code and refresh token grants (with throttling
per token and client address) for applications, the codes devices sign up
with at the CoAP gateway (coapgw.py), and the C2C API over the gateway's
devices."""

import secrets
import time
import urllib.parse

from ..web import HttpError, need

# OAuth clients: the device's own client is public; the app has a secret.
CLIENTS = {"onboard-device": None, "test-app": "test-app-secret"}
SCOPE = "r:deviceinformation:* r:resources:* w:resources:* w:subscriptions:* offline_access"
THROTTLE_WINDOW = 10.0
THROTTLE_LIMIT = 5


class Plgd:
    def __init__(self, sim):
        self.sim = sim
        self.codes = {}  # code -> {"client_id", "redirect_uri", "device_id"}
        self.access = {}  # access token -> {"device_id", "exp"}
        self.refresh = {}  # refresh token -> {"client_id", "device_id"}
        self._seen = {}  # (subject, client address) -> [monotonic times]
        self.pairs = set()  # (access, refresh) issued together
        self.on_refresh = None  # test hook, called after a refresh grant is issued
        # how tokens are made; a test may use base64 ones with "+/=" as real servers do
        self.mint = lambda: secrets.token_urlsafe(24)

    def routes(self, r):
        r.add("GET", "/plgd/authorize", self.authorize)
        r.add("POST", "/plgd/oauth/token", self.token)
        r.add("GET", "/plgd/api/v1/devices", self.list_devices)
        r.add("PUT", "/plgd/api/v1/devices/(?P<di>[^/]+)(?P<href>/.+)", self.update_resource)

    def authorize(self, req):
        # the signed-in user of the portal: the admin token stands in for its session
        if not secrets.compare_digest(req.bearer() or "", self.sim.admin_token):
            raise HttpError(401, "sign in first (Bearer token)")
        q = req.query
        if q.get("response_type") != "code" or not q.get("redirect_uri"):
            raise HttpError(400, "response_type=code and redirect_uri are required")
        if q.get("client_id") not in CLIENTS:
            raise HttpError(401, "client_id: unknown client")
        code = secrets.token_urlsafe(12)
        device_id = q.get("device_id") or secrets.token_hex(8)
        self.codes[code] = {"client_id": q["client_id"], "redirect_uri": q["redirect_uri"],
                            "device_id": device_id}
        sep = "&" if "?" in q["redirect_uri"] else "?"
        target = q["redirect_uri"] + sep + urllib.parse.urlencode(
            {"code": code, "state": q.get("state", "")})
        return 302, None, {"Location": target}

    def _throttle(self, subject, client):
        now = time.monotonic()
        seen = [t for t in self._seen.get((subject, client), []) if now - t < THROTTLE_WINDOW]
        if len(seen) >= THROTTLE_LIMIT:
            wait = int(THROTTLE_WINDOW - (now - seen[0])) + 1
            raise HttpError(429, "too many token requests", {"Retry-After": str(wait)})
        self._seen[(subject, client)] = seen + [now]

    def _issue(self, client_id, device_id):
        lifetime = self.sim.lifetime("plgd")
        access, refresh = self.mint(), self.mint()
        self.access[access] = {"device_id": device_id, "exp": self.sim.now() + lifetime}
        self.refresh[refresh] = {"client_id": client_id, "device_id": device_id}
        self.pairs.add((access, refresh))
        return 200, {"access_token": access, "refresh_token": refresh, "scope": SCOPE,
                     "expires_in": lifetime, "token_type": "Bearer"}

    def token(self, req):
        doc = req.fields()
        grant, client_id = need(doc, "grant_type", "client_id")
        if client_id not in CLIENTS:
            raise HttpError(401, "client_id: unknown client")
        secret = CLIENTS[client_id]
        if secret and not secrets.compare_digest(str(doc.get("client_secret", "")), secret):
            raise HttpError(401, "client_secret: wrong")
        with self.sim.lock:
            if grant == "authorization_code":
                (code,) = need(doc, "code")
                self._throttle(code, req.client)
                grant_of = self.codes.pop(code, None)
                if not grant_of or grant_of["client_id"] != client_id or (
                        doc.get("redirect_uri") not in (None, grant_of["redirect_uri"])):
                    raise HttpError(401, "code: unknown, used or not this client's")
                return self._issue(client_id, grant_of["device_id"])
            if grant == "refresh_token":
                (refresh,) = need(doc, "refresh_token")
                self._throttle(refresh, req.client)
                held = self.refresh.get(refresh)
                if not held or held["client_id"] != client_id:
                    raise HttpError(401, "refresh_token: unknown or already used")
                del self.refresh[refresh]  # rotated: each refresh token works once
                issued = self._issue(client_id, held["device_id"])
                if self.on_refresh:
                    self.on_refresh()
                return issued
        raise HttpError(400, "grant_type: authorization_code or refresh_token")

    def _user(self, req):
        held = self.access.get(req.bearer() or "")
        if not held or held["exp"] < self.sim.now():
            raise HttpError(401, "missing, invalid or expired Bearer token")

    def list_devices(self, req):
        """The devices signed up at the gateway: online or not, and the
        content of each published resource (asked of the device when online)."""
        self._user(req)
        return 200, self.sim.gateway.listing()

    def update_resource(self, req, di, href):
        """A JSON body written to a device's resource (a CoAP POST to the device)."""
        self._user(req)
        gw = self.sim.gateway
        if href not in gw.devices.get(di, {}).get("links", {}):
            raise HttpError(404, "device or resource not found")
        if not gw.online(di):
            raise HttpError(503, "device offline")
        try:
            code, content = gw.update(di, href, req.json())
        except Exception:  # noqa: BLE001  timed out or the connection went
            raise HttpError(504, "the device did not answer") from None
        if not code.is_successful():
            raise HttpError(400, f"the device answered {code}")
        return 200, {"content": content}
