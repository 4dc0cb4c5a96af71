"""cloudsim: the five clouds' APIs on one HTTPS port, and Mosquitto."""

import base64
import collections
import json
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

from .broker import Broker
from .clouds.att import AllThingsTalk
from .clouds.blynk import Blynk
from .clouds.imp import Imp
from .clouds.plgd import Plgd
from .clouds.spokezone import SpokeZone
from .coapgw import Gateway
from .mqttfront import BlynkFront, publish
from .pki import CA
from .timesrc import DateServer, SntpServer
from .web import Faults, HttpError, HTTPSServer, Router

# Default token lifetimes in seconds; /_sim/lifetimes shortens them.
LIFETIMES = {"spokezone": 7 * 24 * 3600, "plgd": 3600, "att": 3599, "blynk": 0}


def _load_or_make_ca(folder):
    # the CA survives restarts with the same --state-dir, so devices keep trusting it
    cert, key = folder / "ca.pem", folder / "ca.key"
    if cert.exists() and key.exists():
        return CA.load(cert.read_bytes(), key.read_bytes())
    ca = CA()
    cert.write_bytes(ca.pem())
    key.write_bytes(ca.key_pem())
    key.chmod(0o600)
    return ca


class Cloudsim:
    def __init__(self, state_dir=None, https_port=0, mqtt_port=0, mqtts_port=0, log=None,
                 sntp_port=0, http_port=0, sntp_fault=None, coap_port=0, coaps_port=0):
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cloudsim-")
            state_dir = self._tmp.name
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.lock = threading.RLock()
        self.admin_token = secrets.token_urlsafe(24)
        self.clock_offset = 0.0
        self.lifetimes = dict(LIFETIMES)
        self.ca = _load_or_make_ca(self.dir)
        self.certfile, self.keyfile = self.ca.write_server(self.dir, "server")
        self.https_port = https_port
        self.broker = Broker(self.dir / "mosquitto", self.certfile, self.keyfile,
                             mqtt_port, mqtts_port)
        self.mqtt_identities = {}  # (cloud, token) -> device id
        # cloudsim's own broker login, for downlinks
        self.internal = ("cloudsim", secrets.token_urlsafe(18))
        self.front = None
        self.faults = Faults()
        # every HTTPS request as it arrived: (monotonic time, method, path), for tests
        self.requests = collections.deque(maxlen=10000)
        self.router = Router()
        self.router.add("POST", "/_sim/faults", self._add_fault)
        self.router.add("DELETE", "/_sim/faults", self._clear_faults)
        self.router.add("POST", "/_sim/lifetimes", self._set_lifetime)
        self.router.add("POST", "/_sim/clock", self._clock)
        self.router.add("GET", "/_sim/state", self._state)
        self.router.add("POST", "/_sim/downlink", self._downlink)
        self.router.add("POST", "/_sim/plgd", self._plgd)
        self.clouds = {"imp": Imp(self), "blynk": Blynk(self), "spokezone": SpokeZone(self),
                       "plgd": Plgd(self), "att": AllThingsTalk(self)}
        for cloud in self.clouds.values():
            cloud.routes(self.router)
        # plgd's devices reach the hub through its CoAP gateway (coap+tcp, coaps+tcp)
        self.gateway = Gateway(self, self.clouds["plgd"], self.certfile, self.keyfile,
                               coap_port, coaps_port)
        self.server = None
        # time sources for devices (never a public server): SNTP and a plain-HTTP Date
        self.sntp = SntpServer(self.now, sntp_port, sntp_fault)
        self.http_port = http_port
        self.date_server = None
        self.router.add("POST", "/_sim/sntp", self._sntp_fault)
        self.router.add("DELETE", "/_sim/sntp", self._sntp_clear)

    # -- shared services for the cloud modules ---------------------------------

    def log(self, line):
        self._log(f"cloudsim: {line}")

    def now(self):
        return time.time() + self.clock_offset

    def time_config(self):
        """A device config's "time" section pointing at this cloudsim's sources."""
        return {"ntp": [f"127.0.0.1:{self.sntp.port}"], "http": f"http://127.0.0.1:{self.http_port}/"}

    def arrivals(self, path, method=None):
        """Monotonic times at which requests for path arrived, oldest first."""
        return [t for t, m, p in list(self.requests) if p == path and method in (None, m)]

    def lifetime(self, cloud):
        return self.lifetimes[cloud]

    def require_basic(self, req):
        """401 unless Authorization is Basic with the admin token as the API key."""
        auth = req.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                key = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except ValueError:
                key = ""
            key = key[:-1] if key.endswith(":") else key
            if secrets.compare_digest(key, self.admin_token):
                return
        raise HttpError(401, "missing or wrong API key (Basic)")

    def allow_mqtt(self, cloud, token, device_id):
        """Let this device token log in to the broker (username and password:
        the token), for its device's topics only. Blynk's logins go through
        the front, which asks the cloud; its own broker account for the
        device is made here."""
        self.mqtt_identities[(cloud, token)] = device_id
        if cloud == "blynk":
            # its account behind the front, before activation answers: a
            # login then only uses it (made at a login, the reload it takes
            # held up every first login of a storm)
            self.front.credentials(device_id)
        else:
            self.broker.allow(token, token, (self.clouds[cloud].prefix(device_id) + "/#",))

    def revoke_mqtt(self, cloud, token):
        device_id = self.mqtt_identities.pop((cloud, token), None)
        if cloud == "blynk":
            if device_id is not None and self.front:
                self.front.kick(device_id)
        else:
            self.broker.revoke(token)

    def downlink(self, cloud, device_id, name, payload):
        """A cloud-to-device message; True when the device was online to get it.
        ValueError when the cloud would not send what was asked."""
        the_cloud = self.clouds[cloud]
        topic, online = the_cloud.downlink_topic(device_id, name)
        shape = getattr(the_cloud, "downlink_payload", None)
        if shape:  # (a cloud that builds the message itself from what was asked)
            payload = shape(payload)
        self.log(f"{cloud} downlink {name} for device {device_id}")
        qos = getattr(the_cloud, "downlink_qos", lambda name: 0)(name)
        publish(self.broker.mqtt_port, *self.internal, topic, payload, qos=qos)
        return online

    # -- /_sim/ controls (admin token) -----------------------------------------

    def _admin(self, req):
        if not secrets.compare_digest(req.bearer() or "", self.admin_token):
            raise HttpError(401, "admin token required")

    def _add_fault(self, req):
        self._admin(req)
        return 201, self.faults.add(req.json())

    def _clear_faults(self, req):
        self._admin(req)
        self.faults.clear()
        return 200, {"status": "cleared"}

    def _set_lifetime(self, req):
        self._admin(req)
        doc = req.json()
        if doc.get("cloud") not in self.lifetimes or not isinstance(doc.get("seconds"), int) \
                or doc["seconds"] < 1:
            raise HttpError(400, f"cloud: one of {', '.join(self.lifetimes)}; seconds >= 1")
        self.lifetimes[doc["cloud"]] = doc["seconds"]
        return 200, {"cloud": doc["cloud"], "seconds": doc["seconds"]}

    def _clock(self, req):
        self._admin(req)
        doc = req.json()
        if doc.get("reset") is True:
            self.clock_offset = 0.0
        elif isinstance(doc.get("advance"), (int, float)):
            self.clock_offset += doc["advance"]
        else:
            raise HttpError(400, "advance: seconds to move the clock forward (or reset: true)")
        return 200, {"now": self.now()}

    def _sntp_fault(self, req):
        self._admin(req)
        try:
            return 201, self.sntp.set_fault(req.json())
        except ValueError as e:
            raise HttpError(400, str(e)) from None

    def _sntp_clear(self, req):
        self._admin(req)
        self.sntp.clear()
        return 200, {"status": "cleared", "requests": self.sntp.requests}

    def _downlink(self, req):
        self._admin(req)
        doc = req.json()
        cloud = doc.get("cloud")
        if not hasattr(self.clouds.get(cloud), "downlink_topic") or "device" not in doc \
                or not isinstance(doc.get("name"), str):
            raise HttpError(400, "cloud (blynk, spokezone, att), device and name are required")
        try:
            online = self.downlink(cloud, doc["device"], doc["name"],
                                   str(doc.get("payload", "")))
        except ValueError as e:
            raise HttpError(400, str(e)) from None
        return 200, {"online": online}

    def _plgd(self, req):
        self._admin(req)
        doc = req.json()
        if isinstance(doc.get("kick"), str):
            return 200, {"kicked": self.gateway.kick(doc["kick"])}
        if isinstance(doc.get("redirect"), str):
            self.gateway.redirect = doc["redirect"]
            return 200, {"redirect": doc["redirect"]}
        raise HttpError(400, "kick: a device id (closes its connection), or redirect: a URI "
                             "for the next sign-up's redirecturi")

    def _state(self, req):
        self._admin(req)
        return 200, {
            "spokezone": self.clouds["spokezone"].devices,
            "blynk": {str(k): v for k, v in self.clouds["blynk"].devices.items()},
            "att": {"devices": self.clouds["att"].devices,
                    "grounds": self.clouds["att"].grounds},
            "imp": {"enrolments": self.clouds["imp"].enrolments},
            "plgd": {"devices": {di: {"online": self.gateway.online(di),
                                      "links": sorted(d["links"])}
                                 for di, d in list(self.gateway.devices.items())},
                     "events": [e for _, e, _ in list(self.gateway.events)]},
        }

    def dispatch(self, req):
        return self.router.dispatch(req)

    # -- life cycle --------------------------------------------------------------

    def start(self):
        self.broker.allow(*self.internal)
        self.broker.start()
        self.front = BlynkFront(self, self.certfile, self.keyfile).start()
        self.server = HTTPSServer(self, self.https_port, self.certfile, self.keyfile)
        self.https_port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.sntp.start()
        self.date_server = DateServer(self.now, self.http_port).start()
        self.gateway.start()
        self.http_port = self.date_server.port
        return self

    def ready_line(self):
        return json.dumps({
            "https": f"https://127.0.0.1:{self.https_port}",
            "mqtt": f"mqtt://127.0.0.1:{self.broker.mqtt_port}",
            "mqtts": f"mqtts://127.0.0.1:{self.broker.mqtts_port}",
            "blynk_mqtt": f"mqtt://127.0.0.1:{self.front.port}",
            "blynk_mqtts": f"mqtts://127.0.0.1:{self.front.tls_port}",
            "sntp": f"udp://127.0.0.1:{self.sntp.port}",
            "http": f"http://127.0.0.1:{self.http_port}",
            "coap": f"coap+tcp://127.0.0.1:{self.gateway.port}",
            "coaps": f"coaps+tcp://127.0.0.1:{self.gateway.tls_port}",
            "ca": str(self.dir / "ca.pem"),
            "admin_token": self.admin_token,
        })

    def stop(self):
        if self.front:
            self.front.stop()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        self.sntp.stop()
        self.gateway.stop()
        if self.date_server:
            self.date_server.stop()
        self.broker.stop()
        if self._tmp:
            self._tmp.cleanup()
