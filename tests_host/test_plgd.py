"""plgd as a real plgd device: coapcloudconf write rules, then a simulated
device configured through its portal against cloudsim's CoAP gateway
(aiocoap): sign-up, sign-in, publish, the C2C API, refresh, kills and
faults. Observed from outside: the gateway's events, the C2C API, the flash
read back through Store."""

import gc
import json
import shutil
import threading
import time
import urllib.parse

import cbor2
import pytest
from aiocoap import DELETE, GET, POST, PUT, Message
from aiocoap.numbers.codes import Code
from cryptography.x509.oid import ExtendedKeyUsageOID
from servers import Blackhole, eventually
from test_portal import get, port_of
from test_profiles import admin, api, configure

from cloudsim.coapgw import USER
from cloudsim.pki import DEVICE_FORMS, device_form
from onboard_cli.simdevice import read_store

RULES = """
import json
from onboard.clouds.plgd import check
from onboard.ocf import write_conf, read_conf
FULL = {"apn": "plgd", "cis": "coaps+tcp://127.0.0.1:5684", "sid": "sid-1", "at": "code-1"}
REG = {"cps": "registered", "cis": "coap+tcp://h:1", "refresh_token": "r"}
cases = [
    ("empty cis deregisters", lambda: write_conf({"cis": ""})),
    ("cis+at+sid accepted", lambda: write_conf(FULL)),
    ("cis alone rejected", lambda: write_conf({"cis": "coaps+tcp://h:1"})),
    ("cis+sid without at rejected", lambda: write_conf({"cis": "coap+tcp://h:1", "sid": "s"})),
    ("at alone rejected", lambda: write_conf({"at": "a"})),
    ("a write naming cps rejected", lambda: write_conf(dict(FULL, cps="registered"))),
    ("an http cis rejected", lambda: write_conf(dict(FULL, cis="https://h"))),
    ("a cis without a port rejected", lambda: write_conf(dict(FULL, cis="coap+tcp://h"))),
    ("a cis without a scheme rejected", lambda: write_conf(dict(FULL, cis="h:5683"))),
    ("a cis on port 1 accepted", lambda: write_conf(dict(FULL, cis="coap+tcp://h:1"))),
    ("a cis on port 65535 accepted", lambda: write_conf(dict(FULL, cis="coap+tcp://h:65535"))),
    ("a cis on port 0 rejected", lambda: write_conf(dict(FULL, cis="coap+tcp://h:0"))),
    ("a cis on port 65536 rejected", lambda: write_conf(dict(FULL, cis="coap+tcp://h:65536"))),
    ("an at of 512 characters accepted", lambda: write_conf(dict(FULL, at="a" * 512))),
    ("an at of 513 characters rejected", lambda: write_conf(dict(FULL, at="a" * 513))),
    ("a new code accepted after a failure", lambda: check(FULL, {}, {"cps": "failed"})),
    ("wifi only keeps the registration",
     lambda: check({"ssid": "x", "cis": "", "at": ""}, {}, REG)),
    ("a new code replaces a registration", lambda: check(FULL, {}, REG)),
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
    ("a cis without a port rejected", "rejected", "cis: "),
    ("a cis without a scheme rejected", "rejected", "cis: "),
    ("a cis on port 1 accepted", "accepted", "readytoregister"),
    ("a cis on port 65535 accepted", "accepted", "readytoregister"),
    ("a cis on port 0 rejected", "rejected", "cis: "),
    ("a cis on port 65536 rejected", "rejected", "cis: "),
    ("an at of 512 characters accepted", "accepted", "readytoregister"),
    ("an at of 513 characters rejected", "rejected", "at: "),
    ("a new code accepted after a failure", "accepted", "readytoregister"),
    ("a new code replaces a registration", "accepted", "readytoregister"),
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


SESSION_ENDS = """
import asyncio, json
from onboard import ocf
from onboard.clouds import plgd


class Conn:  # an open connection whose requests never answer
    w = True
    closed = False

    def close(self):
        self.closed, self.w = True, None

    async def request(self, *args, **kw):
        await asyncio.sleep(60)


class Store:
    def get(self, section):
        return {"cis": "coap+tcp://127.0.0.1:1", "uid": "u", "access_token": "a"}


class RT:
    config = {}
    store = Store()

    def uid(self):
        return "00000000beef"


async def main():
    conn = plgd._live = ocf.conn = Conn()
    task = asyncio.create_task(plgd._session(RT()))
    await asyncio.sleep_ms(10)
    task.cancel()  # as setup mode or a lost network ends a session
    try:
        await task
    except asyncio.CancelledError:
        pass
    print(json.dumps([conn.closed, plgd._live is None, ocf.conn is None]))

asyncio.run(main())
"""


def test_a_session_that_ends_closes_its_connection_and_lets_go_of_it(mpy_in):
    # a closed connection kept by the profile would hold its buffers and the
    # CoAP code in RAM through setup mode and for good after
    closed, profile_let_go, ocf_let_go = json.loads(mpy_in("plgd").run(SESSION_ENDS).lines[-1])
    assert closed and profile_let_go and ocf_let_go


# -- a device against the gateway ----------------------------------------------------

APP = """
import json
from onboard import ocf
light = {"value": False}
def _set(doc):
    light["value"] = doc.get("value")
    with open("light.json", "w") as f:  # (the flash: what the test reads back)
        json.dump(light, f)
ocf.resource("/light/1", "oic.r.switch.binary", lambda: dict(light), _set)
ocf.resource("/sensor/1", "oic.r.temperature", lambda: {"temperature": 21.5})
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


def plgd_device(device, tmp_path, sim, n=0, ca=None, app=APP, **config):
    flash = tmp_path / f"device{n}" / "flash"  # (the device fixture's folder for the n-th)
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "app.py").write_text(app)
    return device(config={"profile": "plgd", "ca": str(ca or sim.dir / "ca.pem"),
                          "time": sim.time_config(), "timeout_s": 2,
                          "backoff": {"base": 0.2, "cap": 1}, **config})


def fields(sim, tls=True):
    gw = sim.gateway
    cis = f"coaps+tcp://127.0.0.1:{gw.tls_port}" if tls else f"coap+tcp://127.0.0.1:{gw.port}"
    return {"apn": "plgd", "cis": cis, "sid": "sid-1", "at": onboard_code(sim)}


def listed(sim, di):
    """The device as the C2C API lists it."""
    return {x["id"]: x for x in c2c(sim)}[di]


def events(sim, di):
    return [e for _, e, who in list(sim.gateway.events) if who == di]


OWN = ("observing ", "notified ", "read ", "observation refused")  # the gateway's own doing


def requests(sim, di):
    """The device's requests among its events, in order (the gateway observes
    the device meanwhile, in its own time)."""
    return [e for e in events(sim, di) if not e.startswith(OWN)]


def online(device, tmp_path, sim, tls=True, app=APP, **config):
    d = plgd_device(device, tmp_path, sim, app=app, **config)
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
    assert requests(cloudsim, di)[:3] == ["signup", "signin", "publish"]
    cloud = d.store()["cloud"]
    assert cloud["cps"] == "registered" and "at" not in cloud
    assert (cloud["access_token"], cloud["refresh_token"]) in cloudsim.clouds["plgd"].pairs


def test_the_c2c_api_lists_the_device_online_with_its_resources_content(device, tmp_path,
                                                                        cloudsim):
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    shown = listed(cloudsim, di)
    assert shown["metadata"]["connection"]["status"] == "ONLINE"
    res = {r["href"]: r for r in shown["resources"]}
    assert res["/sensor/1"]["content"] == {"temperature": 21.5}
    assert res["/sensor/1"]["rt"] == ["oic.r.temperature"]
    assert res["/oic/d"]["content"]["di"] == di


def test_the_c2c_api_shows_only_content_that_plgd_hub_takes(cloudsim):
    # plgd hub takes content from an answer that is OK to it (2.01, 2.02, 2.04,
    # 2.05), decodes CBOR, OCF's CBOR and JSON, and its C2C API leaves out a
    # resource in another content format ("unsupported content type"). A
    # device stand-in: offline, so the listing shows what its resources last
    # came with.
    gw, di = cloudsim.gateway, "00000000-0000-4000-8000-c0ffee000001"
    answers = {"/a": (Code.CONTENT, 10000, cbor2.dumps({"v": 1})),
               "/b": (Code.CONTENT, 50, b'{"v": 2}'),
               "/c": (Code.CONTENT, 10001, cbor2.dumps({"v": 3})),
               "/d": (Code.VALID, 10000, cbor2.dumps({"v": 4})),
               "/e": (Code.CHANGED, 60, cbor2.dumps({"v": 5}))}
    dev = {"di": di, "uid": USER, "remote": None, "ctx": None,
           "links": {h: {"rt": ["x.y"], "content": None} for h in answers}}
    gw.devices[di] = dev
    try:
        for href, (code, fmt, payload) in answers.items():
            gw._content(dev, href, Message(code=code, payload=payload, content_format=fmt))
        shown = listed(cloudsim, di)
    finally:
        del gw.devices[di]
    assert {r["href"]: r["content"] for r in shown["resources"]} == {
        "/a": {"v": 1}, "/b": {"v": 2}, "/d": None, "/e": {"v": 5}}


def test_a_c2c_write_reaches_the_applications_setter(device, tmp_path, cloudsim):
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    reply = c2c(cloudsim, "PUT", f"/{di}/light/1", {"value": True})
    assert reply["content"] == {"value": True}
    assert json.loads((d.flash / "light.json").read_text()) == {"value": True}
    res = {r["href"]: r for r in listed(cloudsim, di)["resources"]}
    assert res["/light/1"]["content"] == {"value": True}




def test_a_change_reaches_the_gateways_observation_as_a_notification(device, tmp_path,
                                                                     cloudsim):
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    # the change after the gateway observes: one before is in its first answer
    assert cloudsim.gateway.wait_observing(di, "/light/1")
    # a full collection meanwhile, which Python's GC may run at any moment: the
    # gateway (in this process) must hold its observation, as plgd hub does
    gc.collect()
    c2c(cloudsim, "PUT", f"/{di}/light/1", {"value": 5})
    assert cloudsim.gateway.wait_event(di, "notified /light/1"), events(cloudsim, di)
    assert cloudsim.gateway.devices[di]["links"]["/light/1"]["content"] == {"value": 5}

def test_the_gateway_observes_the_device_by_its_batch_interface_on_one_connection(
        device, tmp_path, cloudsim):
    # plgd hub's default configuration (requireBatchObserveEnabled) closes the
    # connection of a device it cannot observe through /oic/res?if=oic.if.b
    gw = cloudsim.gateway
    assert gw.require_batch
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    assert gw.wait_event(di, "observing /oic/res"), events(cloudsim, di)
    c2c(cloudsim, "PUT", f"/{di}/light/1", {"value": 7})
    assert gw.wait_event(di, "notified /light/1"), events(cloudsim, di)
    assert gw.devices[di]["mode"].result() == "batch"  # (no resource observed alone)
    assert gw.devices[di]["links"]["/light/1"]["content"] == {"value": 7}
    assert events(cloudsim, di).count("signin") == 1 and gw.online(di)
    assert "observation refused" not in events(cloudsim, di)


def test_the_oic_res_code_is_let_go_of_once_it_has_answered(device, tmp_path, cloudsim):
    # its own module, loaded for the gateway's two requests a connection: the
    # session holds none of it after them (seen at the in-connection
    # refresh's report, the session still on)
    gw = cloudsim.gateway
    cloudsim.lifetimes["plgd"] = 22  # refreshed 10 s before expiry, on the same connection
    try:
        d = online(device, tmp_path, cloudsim, timeout_s=5, report_heap=True)
        di = device_id(cloudsim, d)
        assert gw.wait_event(di, "observing /oic/res"), events(cloudsim, di)
        end = d.wait_note("online", timeout=30)
    finally:
        cloudsim.lifetimes["plgd"] = 3600
    assert events(cloudsim, di).count("signin") == 2  # (the same connection)
    assert "ocf" in end["loaded"] and "ocfres" not in end["loaded"]


def ask_res(gw, di, query, code=GET, formats=None):
    """The device's answer to a request on /oic/res with this query: (code,
    CBOR); its content format appended to formats."""
    async def go():
        msg = Message(code=code, uri_path=["oic", "res"], uri_query=query)
        msg.remote = gw.devices[di]["remote"]
        res = await gw.devices[di]["ctx"].request(msg).response
        if formats is not None:
            formats.append(res.opt.content_format)
        return res.code, cbor2.loads(res.payload) if res.payload else None
    return gw.run(go())


def test_oic_res_lists_the_links_and_itself_as_batch_observable(device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    formats = []
    for query in (["if=oic.if.ll"], []):  # (oic.if.ll: its default interface)
        code, links = ask_res(gw, di, query, formats=formats)
        assert code == Code.CONTENT
        by = {k["href"]: k for k in links}
        assert set(by) == {"/oic/res", "/oic/d", "/light/1", "/sensor/1"}
        assert by["/oic/res"]["p"]["bm"] & 2 and "oic.if.b" in by["/oic/res"]["if"]
        assert {k["anchor"] for k in links} == {"ocf://" + di}
        assert by["/sensor/1"]["rt"] == ["oic.r.temperature"]
    code, (base,) = ask_res(gw, di, ["if=oic.if.baseline"], formats=formats)
    assert code == Code.CONTENT and base["rt"] == ["oic.wk.res"] and len(base["links"]) == 4
    assert formats == [10000] * 3  # OCF's CBOR, as every answer of the device


def test_oic_res_in_a_batch_gives_every_resources_content_under_the_devices_anchor(
        device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    code, batch = ask_res(gw, di, ["if=oic.if.b"])
    assert code == Code.CONTENT
    by = {b["href"]: b for b in batch}
    assert set(by) == {f"ocf://{di}{h}" for h in ("/oic/d", "/light/1", "/sensor/1")}
    assert by[f"ocf://{di}/sensor/1"]["rep"] == {"temperature": 21.5}
    assert by[f"ocf://{di}/sensor/1"]["rt"] == ["oic.r.temperature"]
    assert by[f"ocf://{di}/oic/d"]["rep"]["di"] == di


def test_oic_res_refuses_another_interface_and_a_write(device, tmp_path, cloudsim):
    # as IoTivity-Lite: 4.00 for an interface the resource has not, 4.05 for a method
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    assert ask_res(gw, di, ["if=oic.if.rw"])[0] == Code.BAD_REQUEST
    assert ask_res(gw, di, [], POST)[0] == Code.METHOD_NOT_ALLOWED
    assert ask_res(gw, di, ["if=oic.if.ll"])[0] == Code.CONTENT  # (the device serves on)


# a thermostat: the cloud writes its target, and the room's reading, another
# resource, moves with it; the application tells onboard.ocf it changed
THERMOSTAT = APP + """
room = {"temperature": 20.0}
def _target(doc):
    room["temperature"] = doc.get("value")
    ocf.changed("/room/1")
ocf.resource("/target/1", "oic.r.temperature", lambda: {"temperature": 0}, _target)
ocf.resource("/room/1", "oic.r.temperature", lambda: dict(room))
# read when asked, never notified
import time
ocf.resource("/uptime/1", "x.org.example.uptime", lambda: {"ms": time.ticks_ms()})
"""


def test_a_resource_the_application_says_changed_is_notified_to_the_gateways_observation(
        device, tmp_path, cloudsim):
    d = online(device, tmp_path, cloudsim, app=THERMOSTAT)
    di = device_id(cloudsim, d)
    assert cloudsim.gateway.wait_observing(di, "/room/1")
    c2c(cloudsim, "PUT", f"/{di}/target/1", {"value": 23.5})
    assert cloudsim.gateway.wait_event(di, "notified /room/1"), events(cloudsim, di)
    assert cloudsim.gateway.devices[di]["links"]["/room/1"]["content"] == {"temperature": 23.5}


def test_a_change_is_notified_once(device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim, app=THERMOSTAT)
    di = device_id(cloudsim, d)
    assert gw.wait_observing(di, "/room/1") and gw.wait_observing(di, "/light/1")
    c2c(cloudsim, "PUT", f"/{di}/target/1", {"value": 23.5})
    assert gw.wait_event(di, "notified /room/1")
    # two writes of another resource later, each notified in a later round of
    # the device's notifications than the one before
    for n in (1, 2):
        c2c(cloudsim, "PUT", f"/{di}/light/1", {"value": n})
        assert gw.wait_event(di, "notified /light/1", count=n)
    assert events(cloudsim, di).count("notified /room/1") == 1


def test_a_get_without_observe_answers_afresh_and_leaves_the_observations_as_they_were(
        device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim, app=THERMOSTAT)
    di = device_id(cloudsim, d)
    assert gw.wait_observing(di, "/uptime/1") and gw.wait_observing(di, "/room/1")
    observed = gw.devices[di]["links"]["/uptime/1"]["content"]["ms"]
    # the C2C listing asks each resource of an online device with a plain GET
    contents = {r["href"]: r["content"] for r in listed(cloudsim, di)["resources"]}
    assert contents["/uptime/1"]["ms"] > observed
    c2c(cloudsim, "PUT", f"/{di}/target/1", {"value": 18.0})
    assert gw.wait_event(di, "notified /room/1"), events(cloudsim, di)


# a device without a batch interface on /oic/res (as IoTivity-Lite built
# without OC_RES_BATCH_SUPPORT), which publishes /uptime/1 as discoverable
# only (bm 1), as an IoTivity-Lite application may; plgd hub observes such a
# device resource by resource when its configuration does not require batch
# observation (try.plgd.cloud's bundle)
NOT_OBSERVABLE = THERMOSTAT + """
_links, _serve = ocf.links, ocf.serve
def _only_discoverable():
    out = _links()
    for link in out:
        if link["href"] == "/uptime/1":
            link["p"] = {"bm": 1}
    return out
ocf.links = _only_discoverable
def _no_res(code, opts, payload):
    if (11, b"res") in opts:
        return 0x84, (), b""
    return _serve(code, opts, payload)
ocf.serve = _no_res
def _both(doc):
    _target(doc)
    ocf.changed("/uptime/1")  # (nobody observes it)
ocf.resource("/target/1", "oic.r.temperature", lambda: {"temperature": 0}, _both)
"""


@pytest.fixture
def batch_not_required(cloudsim):
    cloudsim.gateway.require_batch = False
    yield
    cloudsim.gateway.require_batch = True


def test_without_batch_observation_the_gateway_reads_a_resource_published_as_not_observable_once(
        device, tmp_path, cloudsim, batch_not_required):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim, app=NOT_OBSERVABLE)
    di = device_id(cloudsim, d)
    assert gw.wait_event(di, "read /uptime/1"), events(cloudsim, di)
    assert gw.wait_observing(di, "/room/1")
    assert isinstance(gw.devices[di]["links"]["/uptime/1"]["content"]["ms"], int)
    assert (di, "/uptime/1") not in gw.observing
    # a change of it is no notification, and the session goes on
    c2c(cloudsim, "PUT", f"/{di}/target/1", {"value": 19.0})
    assert gw.wait_event(di, "notified /room/1")
    assert gw.devices[di]["links"]["/room/1"]["content"] == {"temperature": 19.0}
    c2c(cloudsim, "PUT", f"/{di}/light/1", {"value": 1})
    assert gw.wait_event(di, "notified /light/1")
    assert events(cloudsim, di).count("signin") == 1
    assert "notified /uptime/1" not in events(cloudsim, di)
    assert "observing /oic/res" not in events(cloudsim, di)


def test_a_device_without_batch_observation_is_disconnected_by_the_hubs_default(
        device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim, app=NOT_OBSERVABLE)
    di = device_id(cloudsim, d)
    assert gw.wait_event(di, "observation refused", count=2), events(cloudsim, di)
    assert events(cloudsim, di).count("signin") >= 2  # (it comes back, and is refused again)


def test_a_write_to_a_read_only_resource_other_methods_and_unknown_paths_are_refused(
        device, tmp_path, cloudsim):
    # as IoTivity-Lite answers them: 4.05 for a method the resource has no
    # handler for, 4.04 for a path it does not have; the device serves on
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    assert gw.wait_observing(di, "/sensor/1") and gw.wait_observing(di, "/light/1")
    asks = [(POST, "/sensor/1", {"temperature": 99}), (PUT, "/light/1", {"value": True}),
            (DELETE, "/light/1", None), (GET, "/nothing/9", None)]
    answers = [gw.run(gw._ask(di, code, href, body))[0] for code, href, body in asks]
    assert answers == [Code.METHOD_NOT_ALLOWED] * 3 + [Code.NOT_FOUND]
    assert not (d.flash / "light.json").exists()  # no write reached the application
    assert gw.run(gw._ask(di, GET, "/sensor/1")) == (Code.CONTENT, {"temperature": 21.5})


def test_a_write_is_answered_changed_with_the_resources_new_content(device, tmp_path, cloudsim):
    # 2.04 Changed, as IoTivity-Lite answers a POST its handler took
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    assert gw.run(gw._ask(di, POST, "/light/1", {"value": True})) == (Code.CHANGED,
                                                                      {"value": True})

# -- refresh, kills ---------------------------------------------------------------------

def test_refresh_comes_before_expiry_and_the_new_pair_is_stored_in_one_write_before_use(
        device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    cloudsim.lifetimes["plgd"] = 22  # IoTivity-Lite's margin for > 20 s: 10 s before
    seen = {}
    try:
        d = online(device, tmp_path, cloudsim, timeout_s=5)
        di = device_id(cloudsim, d)
        first = d.store()["cloud"]
        expiry = gw.access[first["access_token"]]["exp"]
        generation = d.store_generation()

        def hook(path, doc):
            if doc and doc.get("di") == di:
                if path == "/oic/sec/tokenrefresh":
                    seen.setdefault("refresh_at", cloudsim.now())
                elif path == "/oic/sec/session" and "refresh_at" in seen and "flash" not in seen:
                    # the flash as the new access token is first used
                    seen["presented"] = doc["accesstoken"]
                    seen["flash"] = shutil.copytree(d.flash, tmp_path / "at-sign-in")
        gw.on_request = hook
        d.wait_note("renewed", timeout=30)
        d.wait_note("online")
    finally:
        gw.on_request = None
        cloudsim.lifetimes["plgd"] = 3600
    # 10 s before expiry by the device's ticks; more than 5 s by the gateway's clock
    # (a late device loses some, a device without the margin had 1 s at most),
    # and not earlier (a device is late, never early; 1 s: the expiry's whole seconds)
    assert 5 < expiry - seen["refresh_at"] <= 11
    at_use = read_store(seen["flash"])
    assert at_use["data"]["cloud"]["access_token"] == seen["presented"] != first["access_token"]
    assert at_use["gen"] == generation + 1  # one write: the pair and its lifetime together
    cloud = d.store()["cloud"]
    assert (cloud["access_token"], cloud["refresh_token"]) in cloudsim.clouds["plgd"].pairs


def test_after_a_refresh_on_the_same_connection_changes_still_reach_the_gateway(
        device, tmp_path, cloudsim):
    # IoTivity-Lite signs in again after a refresh and does not publish again;
    # plgd hub observes a published path once per connection: observations
    # dropped by the device at a refresh would leave the hub's copy stale
    gw = cloudsim.gateway
    cloudsim.lifetimes["plgd"] = 22  # refreshed 10 s before expiry, on the same connection
    try:
        d = online(device, tmp_path, cloudsim, timeout_s=5)
        di = device_id(cloudsim, d)
        assert gw.wait_observing(di, "/light/1")
        d.wait_note("renewed", timeout=30)
        d.wait_note("online")
    finally:
        cloudsim.lifetimes["plgd"] = 3600
    assert events(cloudsim, di).count("signin") == 2  # the same connection: signed in again
    assert events(cloudsim, di).count("publish") == 1  # and not published again
    # published for good (ttl 0): still listed after the refresh, 12 s after the publish
    assert {"/light/1", "/sensor/1"} <= {r["href"] for r in listed(cloudsim, di)["resources"]}
    c2c(cloudsim, "PUT", f"/{di}/light/1", {"value": 7})
    assert gw.wait_event(di, "notified /light/1"), events(cloudsim, di)
    assert gw.devices[di]["links"]["/light/1"]["content"] == {"value": 7}


@pytest.mark.parametrize("moment", ["the refresh arrives", "the new pair signs in"])
def test_a_kill_during_a_refresh_leaves_a_device_that_comes_back(device, tmp_path, cloudsim,
                                                                  moment):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    killed = threading.Event()

    def hook(path, doc):
        if killed.is_set() or not doc or doc.get("di") != di:
            return
        if path == "/oic/sec/tokenrefresh":
            if moment == "the refresh arrives":
                d.kill()  # the gateway rotates the pair the device will never get
                killed.set()
            else:
                hook.refreshed = True
        elif path == "/oic/sec/session" and getattr(hook, "refreshed", False):
            d.kill()  # the new pair is stored: this sign-in uses it
            killed.set()
    gw.on_request = hook
    try:
        assert gw.kick(di)  # the device connects again: refresh, then sign-in
        assert killed.wait(20)
    finally:
        gw.on_request = None
    signups = events(cloudsim, di).count("signup")
    again = device(same_as=d, config=d.config)
    if moment == "the new pair signs in":
        again.wait_state("RUNNING")
        assert events(cloudsim, di).count("signup") == signups  # by itself
        return
    # the cloud spent the refresh token the device kept: 703, and a new code works
    ev = again.wait_state("WAIT_CONFIG", last_error=703)
    cloud = again.store()["cloud"]
    assert cloud["cps"] == "failed" and "refresh_token" not in cloud
    status, _, body = get(port_of(ev), "/config?" + urllib.parse.urlencode(
        {"ssid": "home", "pass": "correct horse", **fields(cloudsim)}))
    assert status == 200, body
    again.wait_state("RUNNING")
    assert events(cloudsim, di).count("signup") == signups + 1
    assert again.store()["cloud"]["cps"] == "registered"


# -- faults -----------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [{"kind": "drop"}, {"kind": "status", "status": 503},
                                   {"kind": "latency", "seconds": 4}],
                         ids=["closes", "5.03", "silent"])
def test_a_transient_gateway_fault_shows_702_and_keeps_the_registration(device, tmp_path,
                                                                        cloudsim, fault):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    cloudsim.faults.add({"path": "/oic/sec/session", "method": "POST", **fault})
    assert gw.kick(di)
    d.wait_for(lambda e: e["last_error"] == 702, "last_error 702")
    assert d.store()["cloud"]["cps"] == "registered"  # a fault is no refusal
    d.wait_state("RUNNING")
    # (read once online: each try refreshes the pair first, so at the 702 the
    # next try may have spent the stored refresh token before storing the new)
    assert d.store()["cloud"]["refresh_token"] in gw.refresh
    assert events(cloudsim, di).count("signup") == 1


@pytest.mark.parametrize("body", [
    {"accesstoken": 7, "refreshtoken": "r", "expiresin": 60},
    {"accesstoken": "a", "refreshtoken": None, "expiresin": 60},
    ["not", "a", "map"], None], ids=["number", "null", "list", "not-cbor"])
def test_a_refresh_reply_of_the_wrong_shape_shows_702_and_keeps_the_pair(device, tmp_path,
                                                                         cloudsim, body):
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    kept = d.store()["cloud"]
    # the refresh tokens the gateway is shown after the bad reply (the faulted
    # request itself is answered before the hook): the device's retry must
    # present the one it kept. (The store, read after 702, may already hold
    # the pair that retry brought, on a loaded machine.)
    presented, retried = [], threading.Event()

    def hook(path, doc):
        if path == "/oic/sec/tokenrefresh" and doc.get("di") == di:
            presented.append(doc.get("refreshtoken"))
            retried.set()

    fault = {"path": "/oic/sec/tokenrefresh", "method": "POST", "kind": "shape"}
    cloudsim.faults.add(fault if body is None else {**fault, "body": body})
    gw.on_request = hook
    try:
        assert gw.kick(di)
        d.wait_for(lambda e: e["last_error"] == 702, "last_error 702")
        assert retried.wait(60), "no refresh after the bad reply"
    finally:
        gw.on_request = None
    assert presented[0] == kept["refresh_token"]  # the pair it kept
    d.wait_state("RUNNING")  # and it still refreshes
    assert d.restarts() == 0


@pytest.mark.parametrize("path", ["/oic/sec/session", "/oic/rd"], ids=["sign-in", "publish"])
def test_a_401_on_sign_in_or_publish_is_refreshed_and_signed_in_again_keeping_the_registration(
        device, tmp_path, cloudsim, path):
    # as IoTivity-Lite: only the access token is taken as refused (plgd hub
    # answers 4.01 also while its token check fails); only a refused refresh
    # ends the registration
    gw = cloudsim.gateway
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    kept = d.store()["cloud"]
    seen = len(events(cloudsim, di))
    cloudsim.faults.add({"path": path, "method": "POST", "kind": "status", "status": 401})
    assert gw.kick(di)
    d.wait_for(lambda e: "retry_in" in e, "a retry")
    d.wait_state("RUNNING")
    assert events(cloudsim, di)[seen:].count("refresh") == 2  # one each connection
    cloud = d.store()["cloud"]
    assert cloud["cps"] == "registered" and cloud["uid"] == kept["uid"]
    states = [e["state"] for e in d.events]
    assert "WAIT_CONFIG" not in states[states.index("RUNNING"):]


@pytest.mark.parametrize("status", [400, 500])
def test_links_the_gateway_does_not_take_are_published_at_the_next_sign_in_signed_in_meanwhile(
        device, tmp_path, cloudsim, status):
    # as IoTivity-Lite (oc_cloud_rd.c): a publish answered 4.00 (plgd hub: its
    # resource aggregate failed) or 5.00 (its queue full) leaves the device
    # signed in, on its connection; the sign-in after the next refresh publishes
    gw = cloudsim.gateway
    cloudsim.lifetimes["plgd"] = 22  # refreshed 10 s before expiry, on the same connection
    cloudsim.faults.add({"path": "/oic/rd", "method": "POST", "kind": "status",
                         "status": status})
    try:
        d = online(device, tmp_path, cloudsim, timeout_s=5)
        di = device_id(cloudsim, d)
        assert gw.wait_event(di, "publish", timeout=60)
    finally:
        cloudsim.lifetimes["plgd"] = 3600
    assert requests(cloudsim, di)[:5] == ["signup", "signin", "refresh", "signin", "publish"]
    first = gw.came_on["/oic/sec/account"]._transport  # the sign-up's connection: still open
    assert first and not first.is_closing()
    assert {"/light/1", "/sensor/1"} <= {r["href"] for r in listed(cloudsim, di)["resources"]}


def test_a_publish_not_answered_in_time_leaves_the_device_signed_in_on_its_connection(
        device, tmp_path, cloudsim):
    # as IoTivity-Lite: its publish handler takes a timeout as any answer but
    # 2.04 (links kept for the next sign-in) and leaves the connection to the
    # keepalive. The gateway answers 2 s after the device's 5 s (ignored then)
    gw = cloudsim.gateway
    cloudsim.lifetimes["plgd"] = 22  # refreshed 10 s before expiry, on the same connection
    cloudsim.faults.add({"path": "/oic/rd", "method": "POST", "kind": "latency", "seconds": 7})
    try:
        d = online(device, tmp_path, cloudsim, timeout_s=5)
        di = device_id(cloudsim, d)
        assert gw.wait_event(di, "publish", timeout=60, count=2)
    finally:
        cloudsim.lifetimes["plgd"] = 3600
    assert requests(cloudsim, di)[:6] == ["signup", "signin", "publish", "refresh", "signin",
                                          "publish"]
    first = gw.came_on["/oic/sec/account"]._transport  # the sign-up's connection: still open
    assert first and not first.is_closing()
    assert all(e["last_error"] == 0 for e in d.events)


def refresh_refused(device, tmp_path, cloudsim):
    """An online device whose next refresh (on a new connection) the gateway
    refuses with 4.01: (device, di, its setup mode's event with 703)."""
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    cloudsim.faults.add({"path": "/oic/sec/tokenrefresh", "method": "POST", "kind": "status",
                         "status": 401})
    assert cloudsim.gateway.kick(di)
    return d, di, d.wait_state("WAIT_CONFIG", last_error=703)


def test_a_device_whose_refresh_is_refused_keeps_no_connection_to_the_gateway(
        device, tmp_path, cloudsim):
    # setup mode after the 703 holds nothing of the cloud open: the device closed
    # the connection its refused refresh came on
    gw = cloudsim.gateway
    refresh_refused(device, tmp_path, cloudsim)
    assert gw.closed(gw.came_on["/oic/sec/tokenrefresh"])


def test_a_code_the_gateway_cannot_use_is_tried_six_times_then_703_keeping_it(device, tmp_path,
                                                                             cloudsim):
    # plgd hub answers 5.03 (as when its OAuth server is away); IoTivity-Lite
    # gives a sign-up 6 tries, then cps failed: setup mode shows why, and the
    # code is tried again once setup mode idles (or replaced there)
    d = plgd_device(device, tmp_path, cloudsim, portal={"idle_timeout_s": 2})
    before = sign_ups_refused(cloudsim)
    configure(d, **{**fields(cloudsim), "at": "mistyped-code"})
    d.wait_state("WAIT_CONFIG", last_error=703)
    assert sign_ups_refused(cloudsim) == before + 6
    cloud = d.store()["cloud"]
    assert (cloud["cps"], cloud["at"]) == ("failed", "mistyped-code")
    d.wait_state("CONNECTING_CLOUD", timeout=30)  # idle: the kept code again,
    d.wait_state("WAIT_CONFIG", last_error=703)  # six tries again (a count in a row)
    assert sign_ups_refused(cloudsim) == before + 12


def sign_ups_refused(sim):
    return sum(e.startswith("/oic/sec/account refused") for _, e, _ in list(sim.gateway.events))


def test_a_sign_up_taken_starts_the_count_of_those_not_taken_again(device, tmp_path, cloudsim):
    # five sign-ups answered 5.03, then one taken: a code the gateway cannot use
    # later (a new one, after the registration ended) still gets its six tries
    busy = cloudsim.faults.add({"path": "/oic/sec/account", "method": "POST", "kind": "status",
                                "status": 503, "count": 5})
    d = online(device, tmp_path, cloudsim)
    assert busy["count"] == 0  # (all five were answered so)
    di = device_id(cloudsim, d)
    cloudsim.faults.add({"path": "/oic/sec/tokenrefresh", "method": "POST", "kind": "status",
                         "status": 401})
    assert cloudsim.gateway.kick(di)
    ev = d.wait_state("WAIT_CONFIG", last_error=703)
    before = sign_ups_refused(cloudsim)
    status, _, body = get(port_of(ev), "/config?" + urllib.parse.urlencode(
        {"ssid": "home", "pass": "correct horse", **fields(cloudsim), "at": "mistyped-code"}))
    assert status == 200, body
    d.wait_state("WAIT_CONFIG", last_error=703)
    assert sign_ups_refused(cloudsim) == before + 6


def test_a_401_on_refresh_shows_703_in_setup_mode_and_a_new_code_signs_up_without_a_reset(
        device, tmp_path, cloudsim):
    d, di, ev = refresh_refused(device, tmp_path, cloudsim)
    cloud = d.store()["cloud"]
    assert cloud["cps"] == "failed" and cloud["clec"] == 4 and "access_token" not in cloud
    status, _, body = get(port_of(ev), "/config?" + urllib.parse.urlencode(
        {"ssid": "home", "pass": "correct horse", **fields(cloudsim)}))
    assert status == 200, body
    d.wait_state("RUNNING")
    assert events(cloudsim, di).count("signup") == 2
    assert d.store()["cloud"]["cps"] == "registered"


def test_a_gateway_certificate_from_another_ca_is_refused_with_711(device, tmp_path, cloudsim,
                                                                  pki_dir):
    signups = sum(e == "signup" for _, e, _ in list(cloudsim.gateway.events))
    d = plgd_device(device, tmp_path, cloudsim, ca=pki_dir / "ca.pem")
    configure(d, **fields(cloudsim))
    d.wait_for(lambda e: e["last_error"] == 711, "last_error 711")
    cloud = d.store()["cloud"]
    assert cloud["at"] and cloud["cps"] == "readytoregister"  # the code is kept for a retry
    assert sum(e == "signup" for _, e, _ in list(cloudsim.gateway.events)) == signups


def online_through(relay, device, tmp_path, cloudsim):
    """A plgd device online through relay, Pinging every second: (device,
    its di, the sign-ins the gateway has seen from it)."""
    d = plgd_device(device, tmp_path, cloudsim, keepalive_s=1)
    configure(d, **{**fields(cloudsim), "cis": f"coap+tcp://127.0.0.1:{relay.port}"})
    d.wait_state("RUNNING")
    di = device_id(cloudsim, d)
    return d, di, events(cloudsim, di).count("signin")


def test_a_link_gone_silent_is_found_by_the_keepalive_ping_and_left(device, tmp_path,
                                                                   cloudsim):
    relay = Blackhole(cloudsim.gateway.port)
    try:
        d, di, signins = online_through(relay, device, tmp_path, cloudsim)
        relay.silent.set()  # nothing passes, nothing closes: only a Ping finds out
        # (6 Pongs missed in a row, 4 s each and 4 s apart, as IoTivity-Lite)
        d.wait_for(lambda e: e["last_error"] == 702, "last_error 702", timeout=90)
        relay.silent.clear()
        d.wait_state("RUNNING")  # a new connection through the relay
        # the gateway saw the device sign in again on it
        assert events(cloudsim, di).count("signin") > signins, events(cloudsim, di)
    finally:
        relay.close()


def test_pongs_missed_end_the_session_only_at_the_sixth_in_a_row(device, tmp_path, cloudsim):
    # as IoTivity-Lite: after a Pong missed the next Ping comes 4 s later, and
    # a Pong that comes starts the count again (a lossy link is not left at
    # its first lost packets, a dead one is at the 6th Ping unanswered)
    relay = Blackhole(cloudsim.gateway.port)
    try:
        d, di, signins = online_through(relay, device, tmp_path, cloudsim)
        for href in ("/oic/d", "/light/1", "/sensor/1"):  # then only Pings go on
            assert cloudsim.gateway.wait_observing(di, href)
        while relay.to_device.acquire(blocking=False):  # (what passed before)
            pass
        relay.silent.set()
        # two Pings lost, the second 4 s after the first's Pong was due
        eventually(lambda: relay.dropped >= 2, "second Ping lost", timeout=30)
        relay.silent.clear()
        assert relay.to_device.acquire(timeout=30), "no Pong came back"  # the next Ping's
        assert relay.connections == 1 and not relay.ended  # the session went on
        relay.dropped = 0
        relay.silent.set()  # the count starts again from that Pong
        eventually(lambda: relay.ended, "the device leaving its connection", timeout=90)
        assert relay.ended == [6]  # Pings lost on it, in a row, before it was left
    finally:
        relay.close()
    assert events(cloudsim, di).count("signin") == signins


# -- setup mode: Wi-Fi only, reset, redirect -------------------------------------------------

def test_a_wifi_only_change_through_the_portal_keeps_the_registration(device, tmp_path,
                                                                      cloudsim):
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    d.press(1500)
    ev = d.wait_state("WAIT_CONFIG")
    status, _, body = get(port_of(ev), "/config?" + urllib.parse.urlencode(
        {"ssid": "cafe", "pass": "", "apn": "", "cis": "", "sid": "", "at": ""}))
    assert status == 200, body
    d.wait_state("RUNNING")
    store = d.store()
    assert store["wifi"]["networks"][0]["ssid"] == "cafe"
    assert store["cloud"]["cps"] == "registered"
    assert events(cloudsim, di).count("signup") == 1


def reset_online(device, tmp_path, cloudsim, how):
    """An online device reset (the portal's /reset in setup mode, or a 10 s
    hold while online, cancelling the session); (device, di) once the gateway
    has seen it deregister."""
    d = online(device, tmp_path, cloudsim)
    di = device_id(cloudsim, d)
    if how == "portal":  # in setup mode, offline
        d.press(1500)
        ev = d.wait_state("WAIT_CONFIG")
        assert get(port_of(ev), "/reset")[0] == 200
    else:  # a 10 s hold while online: the session is cancelled at the same time
        d.press(10500)
        d.wait_state("RESET_CONFIG", timeout=30)
    assert cloudsim.gateway.wait_event(di, "deregister")
    return d, di


@pytest.mark.parametrize("how", ["portal", "button"])
def test_a_reset_deregisters_the_device(device, tmp_path, cloudsim, how):
    # as IoTivity-Lite: DELETE /oic/sec/account with di, uid and the access
    # token, which plgd hub needs on a connection not signed in (no sign-out)
    d, di = reset_online(device, tmp_path, cloudsim, how)
    assert events(cloudsim, di)[-1] == "deregister"
    assert "signout" not in events(cloudsim, di)
    assert di not in [x["id"] for x in c2c(cloudsim)]
    assert "cloud" not in d.store()


@pytest.mark.parametrize("how", ["portal", "button"])
def test_after_deregistering_the_device_closes_its_gateway_connection(device, tmp_path,
                                                                        cloudsim, how):
    # in setup mode nothing uses it: left open, the gateway holds it and the
    # device its TLS buffers
    _, di = reset_online(device, tmp_path, cloudsim, how)
    assert cloudsim.gateway.hung_up(di)


def test_a_reset_the_flash_refuses_keeps_the_registration_and_goes_back_online(
        device, tmp_path, cloudsim):
    # the store's next write cannot be made (its temporary file's name is
    # taken by a folder): the device keeps its settings, so the hub must keep
    # it too, and once setup mode idles it signs in with them again
    d = online(device, tmp_path, cloudsim, portal={"idle_timeout_s": 2})
    di = device_id(cloudsim, d)
    (d.flash / "onboard.json.tmp").mkdir()
    d.press(10500)
    d.wait_state("RESET_CONFIG", timeout=30)
    d.wait_state("WAIT_CONFIG")
    (d.flash / "onboard.json.tmp").rmdir()
    d.wait_state("RUNNING", timeout=30)
    assert "deregister" not in events(cloudsim, di)
    assert di in [x["id"] for x in c2c(cloudsim)]


def test_a_redirecturi_from_sign_up_is_followed_and_kept(device, tmp_path, cloudsim):
    gw = cloudsim.gateway
    target = f"coap+tcp://127.0.0.1:{gw.port}"
    api(cloudsim, "POST", "/_sim/plgd", {"redirect": target}, admin(cloudsim))
    d = plgd_device(device, tmp_path, cloudsim)
    configure(d, **fields(cloudsim, tls=True))
    d.wait_state("RUNNING")
    di = device_id(cloudsim, d)
    assert d.store()["cloud"]["cis"] == target
    assert gw.devices[di]["ctx"] is gw.contexts[False]  # signed in where it was sent


# -- device identity certificates (plgd hub's clientCertificateRequired) --------------------

@pytest.fixture
def certificate_required(cloudsim):
    cloudsim.gateway.client_cert_required = True
    yield
    cloudsim.gateway.client_cert_required = False


def identity(sim, tmp_path, di, usages=None, form="PEM", issuer=None):
    """{cert, key}: the config's paths of a device identity certificate for
    di that the sim's CA (or issuer, another CA) issued, and its key, in one
    of cloudsim.pki's DEVICE_FORMS."""
    cert, key = device_form(*(issuer or sim.ca).issue_device(di, usages), form)
    (tmp_path / "device.pem").write_bytes(cert)
    (tmp_path / "device.key").write_bytes(key)
    return {"cert": str(tmp_path / "device.pem"), "key": str(tmp_path / "device.key")}


def refused_at_the_handshake(device, tmp_path, sim, **config):
    """A device configured through its portal, up to its first retry: (the
    device, the gateway's events since it started). The refusal is a
    failure to reach the cloud, retried (702), as a TLS alert reads on the
    firmware too: neither 711 (it is not the server's certificate) nor 703
    (the alert does not say the certificate is at fault)."""
    since = time.monotonic()
    d = plgd_device(device, tmp_path, sim, **config)
    configure(d, **fields(sim))
    retry = d.wait_for(lambda e: e["state"] == "CONNECTING_CLOUD" and "retry_in" in e, "a retry")
    assert retry["last_error"] == 702, retry
    return d, [e for t, e, _ in list(sim.gateway.events) if t >= since]


@pytest.mark.parametrize("missing", [False, True], ids=["not a certificate", "missing"])
def test_a_ca_file_that_does_not_load_is_700_naming_it(device, tmp_path, cloudsim, missing):
    ca = tmp_path / "bad.pem"
    if not missing:
        ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64!\n")
    d = plgd_device(device, tmp_path, cloudsim, ca=str(ca))
    configure(d, **fields(cloudsim))
    retry = d.wait_for(lambda e: e["state"] == "CONNECTING_CLOUD" and "retry_in" in e, "a retry")
    assert retry["last_error"] == 700
    assert "config: ca: " in d.log_path.read_text()


@pytest.mark.parametrize("form", DEVICE_FORMS)
def test_a_device_with_its_identity_certificate_is_taken_where_one_is_required_under_its_id(
        device, tmp_path, cloudsim, certificate_required, form):
    di = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
    d = online(device, tmp_path, cloudsim, **identity(cloudsim, tmp_path, di, form=form))
    assert requests(cloudsim, di)[:3] == ["signup", "signin", "publish"]
    assert device_id(cloudsim, d) == di
    # the device names itself so too: its /oic/d, as the hub lists it
    assert listed(cloudsim, di)["resources"] and {
        r["href"]: r["content"] for r in listed(cloudsim, di)["resources"]}["/oic/d"]["di"] == di


def test_online_with_its_identity_certificate_the_device_holds_none_of_the_code_that_read_it(
        device, tmp_path, cloudsim, certificate_required):
    # the certificate is read twice: into the TLS context, and for the id it names
    di = "5e0f1a2b-3c4d-4e5f-9a6b-7c8d9e0f1a2b"
    d = plgd_device(device, tmp_path, cloudsim, report_heap=True,
                    **identity(cloudsim, tmp_path, di))
    configure(d, **fields(cloudsim))
    running = d.wait_state("RUNNING")
    assert device_id(cloudsim, d) == di  # (the id read from it)
    assert {"ca", "cloudtls"} & set(running["loaded"]) == set()


def test_a_device_without_a_certificate_is_refused_where_one_is_required(
        device, tmp_path, cloudsim, certificate_required):
    d, events = refused_at_the_handshake(device, tmp_path, cloudsim)
    assert "signup" not in events
    assert "at" in d.store()["cloud"]  # (the code kept, not spent)


def test_a_certificate_another_ca_issued_is_refused_at_the_handshake(device, tmp_path,
                                                                     cloudsim):
    from cloudsim.pki import CA

    di = "5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c"
    _, events = refused_at_the_handshake(device, tmp_path, cloudsim, **identity(
        cloudsim, tmp_path, di, issuer=CA("not the hub's CA")))
    assert events == []  # (no request got through)


@pytest.mark.parametrize("usages", [[ExtendedKeyUsageOID.CLIENT_AUTH],
                                    [ExtendedKeyUsageOID.CLIENT_AUTH,
                                     ExtendedKeyUsageOID.SERVER_AUTH]],
                         ids=["client only", "without OCF's identity"])
def test_a_certificate_that_is_not_a_device_identity_is_refused(
        device, tmp_path, cloudsim, usages):
    # (checked when given, as the hub does whether or not it requires one)
    di = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
    _, events = refused_at_the_handshake(device, tmp_path, cloudsim,
                                         **identity(cloudsim, tmp_path, di, usages))
    assert "signup" not in events
    assert "/oic/sec/account refused: certificate: not a device identity certificate" in events


# -- the gateway alone (aiocoap's client as the device) -----------------------------------

def sign_up(sim, code, di="00000000-0000-4000-8000-00000000beef"):
    import asyncio

    import cbor2
    from aiocoap import POST, Context, Message

    async def go():
        ctx = await Context.create_client_context(transports=["tcpclient"])
        try:
            msg = Message(code=POST, uri=f"coap+tcp://127.0.0.1:{sim.gateway.port}/oic/sec/account",
                          payload=cbor2.dumps({"di": di, "authprovider": "plgd",
                                               "accesstoken": code}), content_format=10000)
            return str((await ctx.request(msg).response).code)
        finally:
            await ctx.shutdown()
    return asyncio.run(go())


def gateway_requests(sim, *requests):
    """Requests (method, path, query, CBOR body or None) on one connection
    to the gateway, not signed in: each reply's code as text."""
    import asyncio

    from aiocoap import Context

    async def go():
        ctx = await Context.create_client_context(transports=["tcpclient"])
        out = []
        try:
            for method, path, query, body in requests:
                msg = Message(code=method, uri=f"coap+tcp://127.0.0.1:{sim.gateway.port}{path}",
                              uri_query=query, content_format=10000,
                              payload=b"" if body is None else cbor2.dumps(body))
                out.append(str((await ctx.request(msg).response).code))
        finally:
            await ctx.shutdown()
        return out
    return asyncio.run(go())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_gateway_takes_a_sign_off_or_sign_out_only_with_the_owners_uid_and_token(cloudsim):
    # plgd hub's signOff.go and sign-out: on a connection not signed in, di,
    # uid and accesstoken are all needed (4.00), and the token must be the
    # uid's (4.01); then the device is gone
    di = "00000000-0000-4000-8000-00000000dead"
    (code,) = gateway_requests(cloudsim, (POST, "/oic/sec/account", (), {
        "di": di, "authprovider": "plgd", "accesstoken": onboard_code(cloudsim)}))
    assert code.startswith("2.04")
    token = next(t for t, v in cloudsim.gateway.access.items() if v["di"] == di)
    q = [f"di={di}", f"accesstoken={token}"]
    # (each on a connection of its own: the gateway closes one once it has
    # answered an error on these paths, as the hub's service.go does)
    replies = [code for request in (
        (POST, "/oic/sec/session", (), {"di": di, "uid": USER, "login": False}),
        (DELETE, "/oic/sec/account", q, None),
        (DELETE, "/oic/sec/account", [*q, "uid=someone-else"], None))
        for code in gateway_requests(cloudsim, request)]
    assert [r[:4] for r in replies] == ["4.00", "4.00", "4.01"]
    assert di in cloudsim.gateway.devices
    (code,) = gateway_requests(cloudsim, (DELETE, "/oic/sec/account", [*q, f"uid={USER}"], None))
    assert code.startswith("2.02") and di not in cloudsim.gateway.devices


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_gateway_takes_a_portal_code_once(cloudsim):
    # a used code: its exchange fails, which plgd hub's signUp.go answers with 5.03
    code = onboard_code(cloudsim)
    assert sign_up(cloudsim, code).startswith("2.04")
    assert sign_up(cloudsim, code).startswith("5.03")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_code_onboard_plgd_onboard_prints_signs_up_at_the_gateway(cloudsim):
    from test_cloud_commands import ok
    from test_cloud_commands import onboard as cli
    cis = f"coaps+tcp://127.0.0.1:{cloudsim.gateway.tls_port}"
    conf = ok(cli(cloudsim, "plgd", "onboard", f"--token={cloudsim.admin_token}", "--cis", cis))
    assert conf["cis"] == cis and conf["apn"] == "plgd"
    assert sign_up(cloudsim, conf["at"]).startswith("2.04")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_gateway_refuses_a_code_it_did_not_issue_for_devices(cloudsim):
    from test_cloudsim import CALLBACK, browser_get
    _, location = browser_get(cloudsim, "/plgd/authorize?" + urllib.parse.urlencode(
        {"response_type": "code", "client_id": "test-app", "redirect_uri": CALLBACK}),
        admin(cloudsim))
    app_code = dict(urllib.parse.parse_qsl(location.split("?", 1)[1]))["code"]
    assert sign_up(cloudsim, app_code).startswith("5.03")  # an application's code
    assert sign_up(cloudsim, "made-up-code").startswith("5.03")
