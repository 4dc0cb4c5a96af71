"""plgd as a real plgd device: coapcloudconf write rules, then a simulated
device configured through its portal against cloudsim's CoAP gateway
(aiocoap): sign-up, sign-in, publish, the C2C API, refresh, kills and
faults. Observed from outside: the gateway's events, the C2C API, the flash
read back through Store."""

import json
import urllib.error
import urllib.parse

import pytest
from test_profiles import admin, api, configure

RULES = """
import json
from onboard.clouds.plgd import write_conf, read_conf, check
FULL = {"apn": "plgd", "cis": "coaps+tcp://127.0.0.1:5684", "sid": "sid-1", "at": "code-1"}
REG = {"cps": "registered", "cis": "coap+tcp://h:1", "refresh_token": "r"}
cases = [
    ("empty cis deregisters", lambda: write_conf(REG, {"cis": ""})),
    ("cis+at+sid accepted", lambda: write_conf({}, FULL)),
    ("cis alone rejected", lambda: write_conf({}, {"cis": "coaps+tcp://h:1"})),
    ("cis+sid without at rejected", lambda: write_conf({}, {"cis": "coap+tcp://h:1", "sid": "s"})),
    ("at alone rejected", lambda: write_conf({}, {"at": "a"})),
    ("a write naming cps rejected", lambda: write_conf({}, dict(FULL, cps="registered"))),
    ("an http cis rejected", lambda: write_conf({}, dict(FULL, cis="https://h"))),
    ("a new code accepted after a failure", lambda: write_conf({"cps": "failed"}, FULL)),
    ("wifi only keeps the registration",
     lambda: check({"ssid": "x", "cis": "", "at": ""}, {}, REG)),
]
for name, f in cases:
    try:
        out = f()
        print(json.dumps([name, "accepted", out, read_conf(out)]))
    except ValueError as e:
        print(json.dumps([name, "rejected", str(e), None]))
"""


@pytest.fixture(scope="module")
def rules(mpy_in):
    run = mpy_in("plgd").run(RULES)
    return {row[0]: row[1:] for row in map(json.loads, run.lines)}


@pytest.mark.parametrize("case,outcome,detail", [
    ("empty cis deregisters", "accepted", "uninitialized"),
    ("cis+at+sid accepted", "accepted", "readytoregister"),
    ("cis alone rejected", "rejected", "at: "),
    ("cis+sid without at rejected", "rejected", "at: "),
    ("at alone rejected", "rejected", "cis: "),
    ("a write naming cps rejected", "rejected", "cps: "),
    ("an http cis rejected", "rejected", "cis: "),
    ("a new code accepted after a failure", "accepted", "readytoregister"),
])
def test_coapcloudconf_write_rules(rules, case, outcome, detail):
    got, out, _ = rules[case]
    assert got == outcome
    if outcome == "accepted":
        assert out["cps"] == detail and out["clec"] == 0
    else:
        assert out.startswith(detail)


def test_an_empty_cis_clears_the_tokens(rules):
    _, out, read = rules["empty cis deregisters"]
    assert out["refresh_token"] is None and read["cis"] is None


def test_at_is_never_returned_by_a_read(rules):
    reads = [read for _, _, read in rules.values() if read is not None]
    assert reads and all("at" not in read for read in reads)


def test_a_wifi_only_change_keeps_the_registration(rules):
    assert rules["wifi only keeps the registration"][:2] == ["accepted", {}]


# -- a device against the gateway ----------------------------------------------------

APP = """
import json
from onboard.clouds import plgd
light = {"value": False}
def _set(doc):
    light["value"] = doc.get("value")
    with open("light.json", "w") as f:  # (the flash: what the test reads back)
        json.dump(light, f)
plgd.resource("/light/1", "oic.r.switch.binary", lambda: dict(light), _set)
plgd.resource("/sensor/1", "oic.r.temperature", lambda: {"temperature": 21.5})
"""


def onboard_code(sim):
    """The portal's "Onboard Device" code, as `onboard plgd onboard` prints it."""
    from test_cloudsim import CALLBACK, browser_get
    status, location = browser_get(
        sim, "/plgd/authorize?" + urllib.parse.urlencode(
            {"response_type": "code", "client_id": "onboard-device", "redirect_uri": CALLBACK}),
        admin(sim))
    assert status == 302
    return dict(urllib.parse.parse_qsl(location.split("?", 1)[1]))["code"]


def user_token(sim):
    """An application's access token (authorization code grant), for the C2C API."""
    from test_cloudsim import CALLBACK, browser_get
    _, location = browser_get(
        sim, "/plgd/authorize?" + urllib.parse.urlencode(
            {"response_type": "code", "client_id": "test-app", "redirect_uri": CALLBACK}),
        admin(sim))
    code = dict(urllib.parse.parse_qsl(location.split("?", 1)[1]))["code"]
    return api(sim, "POST", "/plgd/oauth/token", {
        "grant_type": "authorization_code", "client_id": "test-app",
        "client_secret": "test-app-secret", "code": code})["access_token"]


def c2c(sim, method="GET", path="", body=None):
    return api(sim, method, "/plgd/api/v1/devices" + path, body,
               {"Authorization": "Bearer " + user_token(sim)})


def plgd_device(device, tmp_path, sim, n=0, ca=None, **config):
    flash = tmp_path / f"device{n}" / "flash"  # (the device fixture's folder for the n-th)
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "app.py").write_text(APP)
    return device(config={"profile": "plgd", "ca": str(ca or sim.dir / "ca.pem"),
                          "time": sim.time_config(), "timeout_s": 2,
                          "backoff": {"base": 0.2, "cap": 1}, **config})


def fields(sim, tls=True):
    gw = sim.gateway
    cis = f"coaps+tcp://127.0.0.1:{gw.tls_port}" if tls else f"coap+tcp://127.0.0.1:{gw.port}"
    return {"apn": "plgd", "cis": cis, "sid": "sid-1", "at": onboard_code(sim)}


def events(sim, di):
    return [e for _, e, who in list(sim.gateway.events) if who == di]


def online(device, tmp_path, sim, tls=True, **config):
    d = plgd_device(device, tmp_path, sim, **config)
    configure(d, **fields(sim, tls))
    d.wait_state("RUNNING")
    return d


def device_id(sim, d):
    # the device's di, as the gateway saw it sign up
    cloud = d.store()["cloud"]
    pairs = {v["di"] for k, v in sim.gateway.access.items() if k == cloud["access_token"]}
    assert len(pairs) == 1
    return pairs.pop()


@pytest.mark.parametrize("tls", [True, False], ids=["coaps+tcp", "coap+tcp"])
def test_a_portal_configured_device_signs_up_signs_in_and_publishes(device, tmp_path, cloudsim,
                                                                    tls):
    d = online(device, tmp_path, cloudsim, tls)
    di = device_id(cloudsim, d)
    assert events(cloudsim, di)[:3] == ["signup", "signin", "publish"]
    cloud = d.store()["cloud"]
    assert cloud["cps"] == "registered" and "at" not in cloud
    assert (cloud["access_token"], cloud["refresh_token"]) in cloudsim.clouds["plgd"].pairs


def test_the_c2c_api_lists_the_device_online_with_its_resources_content(device, tmp_path,
                                                                        cloudsim):
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    listed = {x["id"]: x for x in c2c(cloudsim)}[di]
    assert listed["metadata"]["connection"]["status"] == "ONLINE"
    res = {r["href"]: r for r in listed["resources"]}
    assert res["/sensor/1"]["content"] == {"temperature": 21.5}
    assert res["/sensor/1"]["rt"] == ["oic.r.temperature"]
    assert res["/oic/d"]["content"]["di"] == di


def test_a_c2c_write_reaches_the_applications_setter(device, tmp_path, cloudsim):
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    reply = c2c(cloudsim, "PUT", f"/{di}/light/1", {"value": True})
    assert reply["content"] == {"value": True}
    assert json.loads((d.flash / "light.json").read_text()) == {"value": True}
    res = {r["href"]: r for r in {x["id"]: x for x in c2c(cloudsim)}[di]["resources"]}
    assert res["/light/1"]["content"] == {"value": True}

