"""The fault matrix: per profile and operation, each fault the cloud can
throw. Transient faults keep every stored credential and retry inside the
backoff bounds (and not before Retry-After); rejected credentials lead to
last_error 703 and setup mode."""

import socket

import pytest
from test_profiles import admin, api, configure

BACKOFF = {"base": 0.2, "cap": 1}
FAST = {"timeout_s": 1, "backoff": BACKOFF}

HTTP_FAULTS = {
    "timeout": {"kind": "latency", "seconds": 3},
    "500": {"kind": "status", "status": 500},
    "429": {"kind": "retry_after", "seconds": 2},
    "truncated": {"kind": "truncate"},
    "dropped": {"kind": "drop"},
    "wrong-shape": {"kind": "shape", "status": 201},
    "401": {"kind": "status", "status": 401},
}


def blynk_device(device, cloudsim, **config):
    prov = api(cloudsim, "POST", "/blynk/api/v1/organization/device/provision/token",
               {"orgId": 1, "ownerId": 1}, admin(cloudsim))
    d = device(config={"profile": "blynk", "api": f"https://127.0.0.1:{cloudsim.https_port}/blynk",
                       "host": "127.0.0.1", "port": cloudsim.front.tls_port,
                       "ca": str(cloudsim.dir / "ca.pem"), **FAST, **config})
    return d, {"blynk": prov["token"]}


def spokezone_device(device, cloudsim, **config):
    user = api(cloudsim, "POST", "/spokezone/login",
               {"username": "super", "password": "super-password"})["token"]
    dev = api(cloudsim, "POST", "/spokezone/api/v2/devices", {"cpuId": "cpu-faults"},
              {"x-access-token": user})
    d = device(config={"profile": "spokezone",
                       "api": f"https://127.0.0.1:{cloudsim.https_port}/spokezone",
                       "host": "127.0.0.1", "port": cloudsim.broker.mqtts_port,
                       "ca": str(cloudsim.dir / "ca.pem"), **FAST, **config})
    return d, {"token": dev["token"], "uuid": dev["uuid"], "cpu_id": "cpu-faults"}


def bound(attempt):
    """The full-jitter backoff's upper bound for this attempt."""
    return min(BACKOFF["cap"], BACKOFF["base"] * 2 ** (attempt - 1))


OPERATIONS = {
    "blynk-activation": (blynk_device, "/blynk/external/api/provision"),
    "spokezone-renewal": (spokezone_device, "/spokezone/loginDevice"),
}


@pytest.mark.parametrize("fault", sorted(HTTP_FAULTS))
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_http_fault(device, cloudsim, operation, fault):
    make, path = OPERATIONS[operation]
    d, fields = make(device, cloudsim)
    cloudsim.faults.add({"path": path, **HTTP_FAULTS[fault]})
    configure(d, **fields)
    d.wait_state("CONNECTING_CLOUD")
    stored = d.store()
    if fault == "401":
        d.wait_state("WAIT_CONFIG", last_error=703)
        assert d.store()["cloud"] == stored["cloud"]  # kept: a person decides what replaces it
        return
    retry = d.wait_note("retry_in")
    assert retry["last_error"] == 702
    if fault == "429":  # Retry-After: 2 outweighs the jitter
        assert 2 <= retry["retry_in"] <= max(2, bound(retry["attempt"]))
    else:
        assert 0 <= retry["retry_in"] <= bound(retry["attempt"])
    assert d.store()["cloud"] == stored["cloud"] and d.store()["wifi"] == stored["wifi"]
    d.wait_state("RUNNING", timeout=30)  # the fault was a single one: the retry gets through


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentBroker:
    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("fault", ["refused", "timeout"])
@pytest.mark.parametrize("profile", ["blynk", "spokezone"])
def test_mqtt_connect_fault_keeps_credentials_and_backs_off(device, cloudsim, profile, fault):
    silent = SilentBroker()
    try:
        port = closed_port() if fault == "refused" else silent.port
        make = blynk_device if profile == "blynk" else spokezone_device
        d, fields = make(device, cloudsim, port=port, tls=False)
        configure(d, **fields)
        d.wait_state("CONNECTING_CLOUD")
        retries = [d.wait_note("retry_in") for _ in range(2)]
    finally:
        silent.close()
    assert all(r["last_error"] == 702 for r in retries)
    assert all(0 <= r["retry_in"] <= bound(r["attempt"]) for r in retries)
    assert d.store()["cloud"]["token"] == fields.get("blynk", fields.get("token"))
    assert "wifi" in d.store()


@pytest.mark.parametrize("profile", ["blynk", "spokezone"])
def test_mqtt_login_refused_is_703_and_setup_mode(device, cloudsim, profile, monkeypatch):
    make = blynk_device if profile == "blynk" else spokezone_device
    d, fields = make(device, cloudsim)
    if profile == "blynk":  # the token activates, but the broker login is refused
        monkeypatch.setattr(cloudsim.clouds["blynk"], "mqtt_login", lambda user, pw: None)
    else:  # the HTTP API still knows the token, the broker no longer does
        cloudsim.broker.revoke(fields["token"])
    configure(d, **fields)
    d.wait_state("CONNECTING_CLOUD")
    d.wait_state("WAIT_CONFIG", last_error=703)
    assert "wifi" in d.store()
