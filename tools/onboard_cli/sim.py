"""`onboard sim` (`make sim`): the whole life of a device on this machine.

Starts cloudsim and one simulated device with an empty flash, then walks:
setup mode and its portal, configuration through the portal, Wi-Fi,
activation, MQTT (plgd: CoAP) online, a cloud-sent reconfigure (or, for a
cloud without one, a press of the button), back online, and a token renewal
where tokens expire. Every state change is printed with its time; a summary ends it.
--interactive leaves the device in setup mode for a person with a browser."""

import json
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .paths import ToolError
from .simdevice import Device

LIFETIME = 30  # seconds: a short token lifetime, so the renewal comes within the run


def crashed(event):
    """The failure of a walk that saw the device in ERROR."""
    return AssertionError(f"the device went through ERROR (last_error {event['last_error']})")


class Walk:
    def __init__(self, device):
        self.device = device
        self.start = time.monotonic()
        self.seen = 0

    def show(self):
        for event in self.device.events[self.seen:]:
            extra = f"heap {event['heap']:>6} " if "heap" in event else ""
            if "names" in event:
                extra += f"names {event['names']} ({event['names_bytes']} B) "
            if event.get("portal"):
                extra += f"portal {event['portal']}"
            for key in ("renewed", "online", "retry_in", "message"):
                if key in event:
                    extra += f"{key} {event[key]}"
            print(f"{event['t']:8.2f}s  {event['state']:<17} last_error {event['last_error']:<4}"
                  f" {extra}".rstrip(), flush=True)
        self.seen = len(self.device.events)

    def state(self, state, timeout=60):
        return self._wait(lambda e: e["state"] == state, state, timeout)

    def note(self, key, timeout=60):
        return self._wait(lambda e: key in e, key, timeout)

    def _wait(self, wanted, what, timeout):
        # ERROR ends the walk at once: a whole life has none (see main)
        event = self.device.wait_for(lambda e: wanted(e) or e["state"] == "ERROR", what, timeout)
        self.show()
        if event["state"] == "ERROR" and not wanted(event):
            raise crashed(event)
        return event

    def step(self, text):
        print(f"{'':10}-- {text}", flush=True)


def call(sim, method, path, body=None, headers=None):
    ctx = ssl.create_default_context(cafile=str(sim.dir / "ca.pem"))
    req = urllib.request.Request(f"https://127.0.0.1:{sim.https_port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return json.loads(resp.read())


def portal_config(url, fields):
    data = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(urllib.parse.urljoin(url, "config"), data, timeout=10) as r:
        return json.loads(r.read())["msg"]


def spokezone(sim):
    user = call(sim, "POST", "/spokezone/login",
                {"username": "super", "password": "super-password"})["token"]
    sim.lifetimes["spokezone"] = LIFETIME
    dev = call(sim, "POST", "/spokezone/api/v2/devices", {"cpuId": "sim-cpu-1"},
               {"x-access-token": user})
    config = {"profile": "spokezone", "api": f"https://127.0.0.1:{sim.https_port}/spokezone",
              "host": "127.0.0.1", "port": sim.broker.mqtts_port}
    fields = {"token": dev["token"], "uuid": dev["uuid"], "cpu_id": "sim-cpu-1"}

    def reconfigure():
        call(sim, "POST", "/_sim/downlink", {"cloud": "spokezone", "device": dev["id"],
                                             "name": "reconfigure"},
             {"Authorization": f"Bearer {sim.admin_token}"})
    return config, fields, reconfigure


def blynk(sim):
    prov = call(sim, "POST", "/blynk/api/v1/organization/device/provision/token",
                {"orgId": 1, "ownerId": 1}, {"Authorization": f"Bearer {sim.admin_token}"})
    config = {"profile": "blynk", "api": f"https://127.0.0.1:{sim.https_port}/blynk",
              "host": "127.0.0.1", "port": sim.front.tls_port}

    def reconfigure():
        call(sim, "POST", "/blynk/api/v1/organization/device/provision/reconfigure",
             {"deviceId": prov["deviceId"]}, {"Authorization": f"Bearer {sim.admin_token}"})
    return config, {"blynk": prov["token"]}, reconfigure


def allthingstalk(sim):
    # a maker token (the broker's user name); its LED asset made at the first connection
    device_id = sim.clouds["att"].add_device("ground-1", "sim")
    config = {"profile": "allthingstalk", "api": f"https://127.0.0.1:{sim.https_port}/att",
              "host": "127.0.0.1", "port": sim.broker.login_tls_port,
              "assets": {"led": {"is": "actuator", "type": "boolean", "title": "LED"}}}
    return config, {"device_id": device_id,
                    "token": sim.clouds["att"].devices[device_id]["token"]}, None


# the product's own code on the flash: one resource for the plgd hub to list
PLGD_APP = """from onboard import ocf
ocf.resource("/sensor/1", "oic.r.temperature", lambda: {"temperature": 21.5})
"""


def plgd(sim):
    # the hub's "Onboard Device" code, as `onboard plgd onboard` gets it
    from .clouds import authorization_code

    code = authorization_code(f"https://127.0.0.1:{sim.https_port}/plgd", sim.admin_token,
                              "onboard-device", str(sim.dir / "ca.pem"))
    sim.lifetimes["plgd"] = LIFETIME
    return {"profile": "plgd"}, {"apn": "plgd", "sid": "sid-1", "at": code,
                                 "cis": f"coaps+tcp://127.0.0.1:{sim.gateway.tls_port}"}, None


# profile -> its walk's cloud: (config, the portal's cloud fields, the cloud's
# reconfigure or None: the button opens setup mode again instead)
PROFILES = {"blynk": blynk, "spokezone": spokezone, "allthingstalk": allthingstalk,
            "plgd": plgd}
RENEWS = ("spokezone", "plgd")  # the profiles whose tokens expire: the walk waits for a renewal


def main(args):
    from cloudsim.app import Cloudsim

    if args.romfs:
        from .device import check_image
        args.romfs = check_image(args.romfs)
    if args.profile is None:
        args.profile = "blynk" if args.interactive else "spokezone"
    from cloudsim.broker import BrokerError

    with tempfile.TemporaryDirectory(prefix="onboard-sim-") as tmp:
        try:
            sim = Cloudsim(Path(tmp) / "cloudsim", log=lambda line: None).start()
        except BrokerError as e:
            raise ToolError(str(e)) from None
        device = None
        try:
            config, fields, reconfigure = PROFILES[args.profile](sim)
            config.update({"ca": str(sim.dir / "ca.pem"),
                           "time": sim.time_config(), "vendor": "Acme", "name": "Sensor",
                           "portal": {"idle_timeout_s": 600},
                           "report_heap": bool(args.report_heap)})
            folder = Path(tmp) / "device"
            folder.mkdir()
            if args.profile == "plgd":
                (folder / "flash").mkdir()
                (folder / "flash" / "app.py").write_text(PLGD_APP)
            device = Device(folder, config=config, heapsize=args.heapsize, mpy=args.mpy,
                            romfs=args.romfs, serial=args.serial)
            walk = Walk(device)
            print(f"cloudsim {sim.ready_line()}\n"
                  f"device   {args.profile}, empty flash {device.flash}"
                  + (f", serial {args.serial}" if args.serial else "") + "\n", flush=True)
            url = walk.state("WAIT_CONFIG", 30)["portal"]
            wifi = {"ssid": "home", "pass": "correct horse"}
            if args.interactive:
                print(f"\nOpen {url} in a browser and enter:\n"
                      + "".join(f"  {k:<8} {v}\n" for k, v in {**wifi, **fields}.items())
                      + "Waiting for the device to come online (Ctrl-C to stop)...", flush=True)
                walk.state("RUNNING", timeout=24 * 3600)
            else:
                walk.step("configure through the portal, as a phone app does")
                walk.step(portal_config(url, {**wifi, **fields}))
                walk.state("RUNNING")
            if reconfigure:
                walk.step("the cloud sends a reconfigure")
                reconfigure()
            else:
                walk.step("a short press of the button: setup mode (the cloud has no reconfigure)")
                device.press(2000)
            url = walk.state("WAIT_CONFIG")["portal"]
            walk.step("configure again through the portal: Wi-Fi only, the token is kept")
            portal_config(url, wifi)
            walk.state("RUNNING")
            if args.profile in RENEWS:
                walk.step(f"wait for the token renewal (lifetime {LIFETIME} s)")
                walk.note("renewed", timeout=LIFETIME + 30)
                walk.note("online", timeout=30)
            else:
                walk.step("its device token does not expire: no renewal to show")
            summary(walk, device)
            for event in device.events:
                if event["state"] == "ERROR":  # it came back by rebooting: not a whole life
                    raise crashed(event)
        except KeyboardInterrupt:
            print("\nstopped", flush=True)
        except (AssertionError, urllib.error.URLError) as e:
            print(device.log_path.read_text()[-2000:] if device else "", end="")
            raise ToolError(str(e).split(";")[0]) from None
        finally:
            if device:
                device.stop()
            sim.stop()
    return 0


def summary(walk, device):
    states = [e["state"] for e in device.events]
    path = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    print("\nsummary")
    print("  states     " + " -> ".join(path))
    print(f"  online     {path.count('RUNNING')} times; "
          f"token renewals {sum(1 for e in device.events if e.get('renewed'))}")
    print(f"  store      generation {device.store_generation()} "
          f"(sections: {', '.join(sorted(device.store()))})")
    print(f"  took       {time.monotonic() - walk.start:.1f} s")
