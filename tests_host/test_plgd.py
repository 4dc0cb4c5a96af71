"""plgd: coapcloudconf write rules, token exchange, refresh and rotation."""

import json
import secrets
import threading
import urllib.parse

import pytest
from test_profiles import configure

RULES = """
import json
from onboard.clouds.plgd import write_conf, read_conf
FULL = {"apn": "plgd", "cis": "coaps+tcp://127.0.0.1:5684", "sid": "sid-1", "at": "code-1"}
cases = [
    ("empty cis resets", {"cps": "registered", "cis": "x", "at": "a"}, {"cis": ""}),
    ("cis+at+sid accepted", {}, FULL),
    ("cis alone rejected", {}, {"cis": "coaps+tcp://h"}),
    ("cis+sid without at rejected", {}, {"cis": "c", "sid": "s"}),
    ("at alone rejected", {}, {"at": "a"}),
    ("rejected while registering", {"cps": "registering"}, FULL),
    ("rejected while registered", {"cps": "registered"}, FULL),
    ("reset accepted while registered", {"cps": "registered"}, {"cis": ""}),
]
for name, current, props in cases:
    try:
        out = write_conf(current, props)
        print(json.dumps([name, "accepted", out.get("cps"), read_conf(out)]))
    except ValueError as e:
        print(json.dumps([name, "rejected", str(e), None]))
"""


@pytest.fixture(scope="module")
def rules(mpy_in):
    run = mpy_in("plgd").run(RULES)
    return {row[0]: row[1:] for row in map(json.loads, run.lines)}


@pytest.mark.parametrize("case,outcome,cps", [
    ("empty cis resets", "accepted", "uninitialized"),
    ("cis+at+sid accepted", "accepted", "readyToRegister"),
    ("cis alone rejected", "rejected", None),
    ("cis+sid without at rejected", "rejected", None),
    ("at alone rejected", "rejected", None),
    ("rejected while registering", "rejected", None),
    ("rejected while registered", "rejected", None),
    ("reset accepted while registered", "accepted", "uninitialized"),
])
def test_coapcloudconf_write_rules(rules, case, outcome, cps):
    got, detail, _ = rules[case]
    assert got == outcome
    if outcome == "accepted":
        assert detail == cps


def test_at_is_never_returned_by_a_read(rules):
    reads = [read for _, _, read in rules.values() if read is not None]
    assert reads and all("at" not in read for read in reads)


def plgd_code(cloudsim, device_id):
    from test_cloudsim import CALLBACK, browser_get
    status, location = browser_get(
        cloudsim, "/plgd/authorize?" + urllib.parse.urlencode(
            {"response_type": "code", "client_id": "onboard-device", "redirect_uri": CALLBACK,
             "device_id": device_id}),
        {"Authorization": f"Bearer {cloudsim.admin_token}"})
    assert status == 302
    return dict(urllib.parse.parse_qsl(location.split("?", 1)[1]))["code"]


def plgd_device(device, cloudsim, **config):
    return device(config={"profile": "plgd", "api": f"https://127.0.0.1:{cloudsim.https_port}/plgd",
                          "ca": str(cloudsim.dir / "ca.pem"),
                          "time": cloudsim.time_config(), "timeout_s": 2,
                          "backoff": {"base": 0.2, "cap": 1}, **config})


def onboard_fields(cloudsim, device_id):
    return {"apn": "plgd", "cis": "coaps+tcp://127.0.0.1:5684", "sid": "sid-1",
            "at": plgd_code(cloudsim, device_id)}


def test_at_is_exchanged_for_tokens_and_the_device_runs(device, cloudsim):
    d = plgd_device(device, cloudsim)
    configure(d, **onboard_fields(cloudsim, "plgd-dev-1"))
    d.wait_state("RUNNING")
    cloud = d.store()["cloud"]
    assert cloud["cps"] == "registered" and "at" not in cloud
    assert (cloud["access_token"], cloud["refresh_token"]) in cloudsim.clouds["plgd"].pairs


def test_refresh_before_expiry_rotates_the_pair_with_one_write(device, cloudsim):
    cloudsim.lifetimes["plgd"] = 30
    try:
        d = plgd_device(device, cloudsim)
        configure(d, **onboard_fields(cloudsim, "plgd-dev-2"))
        d.wait_state("RUNNING")
        first = d.store()["cloud"]
        generation = d.store_generation()
        d.wait_note("renewed", timeout=40)
    finally:
        cloudsim.lifetimes["plgd"] = 3600
    cloud = d.store()["cloud"]
    assert cloud["refresh_token"] != first["refresh_token"]
    assert (cloud["access_token"], cloud["refresh_token"]) in cloudsim.clouds["plgd"].pairs
    assert d.store_generation() == generation + 1


def test_429_with_retry_after_is_waited_out(device, cloudsim):
    cloudsim.faults.add({"path": "/plgd/oauth/token", "kind": "retry_after", "seconds": 2})
    d = plgd_device(device, cloudsim)
    configure(d, **onboard_fields(cloudsim, "plgd-dev-3"))
    d.wait_state("RUNNING", timeout=20)
    first, second = cloudsim.arrivals("/plgd/oauth/token")[-2:]
    assert second - first >= 2  # the server saw the retry no sooner than it asked


def test_killed_right_after_new_tokens_arrive_keeps_a_matching_pair(device, cloudsim, mpy):
    cloudsim.lifetimes["plgd"] = 12
    d = plgd_device(device, cloudsim)
    killed = threading.Event()

    def kill_soon():
        if not killed.is_set():
            killed.set()
            threading.Timer(0.005, d.kill).start()
    try:
        configure(d, **onboard_fields(cloudsim, "plgd-dev-4"))
        d.wait_state("RUNNING")
        cloudsim.clouds["plgd"].on_refresh = kill_soon
        assert killed.wait(30)
        d.proc.wait(10)
    finally:
        cloudsim.clouds["plgd"].on_refresh = None
        cloudsim.lifetimes["plgd"] = 3600
    # what the device loads when it boots again
    run = mpy.run(f"""
        import json
        from onboard.store import Store
        print(json.dumps(Store({str(d.flash / "onboard.json")!r}).load()["cloud"]))
    """)
    cloud = json.loads(run.lines[-1])
    assert (cloud["access_token"], cloud["refresh_token"]) in cloudsim.clouds["plgd"].pairs


def test_tokens_with_plus_slash_and_equals_are_form_encoded_on_refresh(device, cloudsim):
    # base64 refresh tokens ("ab+c/d==") must reach the server as they were issued
    plgd = cloudsim.clouds["plgd"]
    plgd.mint = lambda: "ab+c/d==" + secrets.token_hex(6) + "+/="
    try:
        d = plgd_device(device, cloudsim)
        configure(d, **onboard_fields(cloudsim, "plgd-dev-b64"))
        d.wait_state("RUNNING")
        first = d.store()["cloud"]["refresh_token"]
        d.kill()
        again = device(same_as=d, config=d.config)  # a registered device refreshes at boot
        again.wait_note("renewed")
    finally:
        plgd.mint = lambda: secrets.token_urlsafe(24)
    cloud = again.store()["cloud"]
    assert cloud["refresh_token"] != first and "+" in cloud["refresh_token"]
    assert (cloud["access_token"], cloud["refresh_token"]) in plgd.pairs
