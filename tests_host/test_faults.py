"""The fault matrix: per profile and operation, each fault the cloud can
throw. Transient faults keep every stored credential and retry inside the
backoff bounds (and not before Retry-After); rejected credentials lead to
last_error 703 and setup mode."""

import socket
import threading

import pytest
import test_profiles as profiles
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


def blynk_device(device, cloudsim, serial=None, **config):
    """A Blynk device (config: its own keys; one given as None is left out)
    and the portal fields that configure it."""
    prov = api(cloudsim, "POST", "/blynk/api/v1/organization/device/provision/token",
               {"orgId": 1, "ownerId": 1}, admin(cloudsim))
    config = {"profile": "blynk", "api": f"https://127.0.0.1:{cloudsim.https_port}/blynk",
              "host": "127.0.0.1", "port": cloudsim.front.tls_port,
              "ca": str(cloudsim.dir / "ca.pem"),
              "time": cloudsim.time_config(), **FAST, **config}
    d = device(serial=serial, config={k: v for k, v in config.items() if v is not None})
    return d, {"blynk": prov["token"]}


def spokezone_device(device, cloudsim, **config):
    d, fields, _ = profiles.spokezone_device(device, cloudsim, "cpu-faults", **FAST, **config)
    return d, fields


def spokezone_renewing(device, cloudsim, **config):
    # a token that ended an hour ago (renewable for 12 h): the device renews it
    # before it goes online, and cannot ride out a failed renewal with it (one
    # that still works keeps the device online meanwhile: test_spokezone_renewal)
    cloudsim.lifetimes["spokezone"] = -3600
    try:
        d, fields, _ = profiles.spokezone_device(device, cloudsim, "cpu-faults", **FAST, **config)
    finally:
        cloudsim.lifetimes["spokezone"] = 7 * 24 * 3600
    return d, fields


def bound(attempt):
    """The full-jitter backoff's upper bound for this attempt."""
    return min(BACKOFF["cap"], BACKOFF["base"] * 2 ** (attempt - 1))


def att_device(device, cloudsim, **config):
    att = cloudsim.clouds["att"]
    device_id = next(iter(att.devices))
    d = device(config={"profile": "allthingstalk", "host": "127.0.0.1",
                       "port": cloudsim.broker.login_tls_port,
                       "ca": str(cloudsim.dir / "ca.pem"), "time": cloudsim.time_config(),
                       **FAST, **config})
    return d, {"device_id": device_id, "token": att.devices[device_id]["token"]}


OPERATIONS = {
    "blynk-activation": (blynk_device, "/blynk/external/api/provision"),
    "spokezone-renewal": (spokezone_renewing, "/spokezone/loginDevice"),
}
# the stored fields that are credentials: what a transient fault must leave alone
# (plgd speaks CoAP to its gateway: its fault matrix is in test_plgd.py)
CREDENTIALS = {"blynk-activation": ("token",), "spokezone-renewal": ("token", "uuid")}


def expect(d, operation, fault):
    """What follows an injected fault: 703 and setup mode when refused, else a
    retry inside the backoff bounds that gets through; the stored credentials
    are untouched either way."""
    def credentials():
        cloud = d.store()["cloud"]
        return {k: cloud.get(k) for k in CREDENTIALS[operation]}

    wifi = d.store()["wifi"]
    kept = credentials()
    assert all(kept.values())
    if fault == "401":
        d.wait_state("WAIT_CONFIG", last_error=703)
        assert credentials() == kept  # kept: a person decides what replaces them
        return
    retry = d.wait_note("retry_in")
    assert retry["last_error"] == 702
    if fault != "429":
        assert 0 <= retry["retry_in"] <= bound(retry["attempt"])
    assert credentials() == kept and d.store()["wifi"] == wifi
    # the fault held until the store was read here: a retry may come at once,
    # and a renewal that gets through replaces the token. Lifted, one does
    d.sim.faults.clear()
    d.wait_state("RUNNING", timeout=30)
    if fault == "429":  # seen by the server: the retry came no sooner than Retry-After: 2
        first, second = d.sim.arrivals(d.fault_path)[-2:]
        assert second - first >= 2


# Blynk's activation documents no body: any 2xx activates, so a 2xx of
# another shape and a cut empty body are no faults there (test_blynk_app.py)
NO_FAULT = {("blynk-activation", "truncated"), ("blynk-activation", "wrong-shape")}


@pytest.mark.parametrize("operation,fault", [(o, f) for o in sorted(OPERATIONS)
                                             for f in sorted(HTTP_FAULTS)
                                             if (o, f) not in NO_FAULT])
def test_http_fault(device, cloudsim, operation, fault):
    make, path = OPERATIONS[operation]
    d, fields = make(device, cloudsim)
    cloudsim.faults.add({"path": path, "count": -1, **HTTP_FAULTS[fault]})  # (until lifted)
    d.sim, d.fault_path = cloudsim, path
    try:
        configure(d, **fields)
        d.wait_state("CONNECTING_CLOUD")
        expect(d, operation, fault)
    finally:
        cloudsim.faults.clear()  # (the next test's cloud is the same)


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


MQTT_PROFILES = {"blynk": blynk_device, "spokezone": spokezone_device,
                 "allthingstalk": att_device}


@pytest.mark.parametrize("fault", ["refused", "timeout"])
@pytest.mark.parametrize("profile", sorted(MQTT_PROFILES))
def test_mqtt_connect_fault_keeps_credentials_and_backs_off(device, cloudsim, profile, fault):
    silent = SilentBroker()
    try:
        port = closed_port() if fault == "refused" else silent.port
        make = MQTT_PROFILES[profile]
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


def login_refused(device, cloudsim, profile, monkeypatch):
    """A device of profile whose broker login is refused, back in setup mode
    (703): (the device, its token)."""
    d, fields = MQTT_PROFILES[profile](device, cloudsim)
    if profile == "blynk":  # the token activates, but the broker login is refused
        monkeypatch.setattr(cloudsim.clouds["blynk"], "mqtt_login", lambda user, pw: None)
    elif profile == "spokezone":  # the HTTP API still knows the token, the broker does not
        cloudsim.broker.revoke(fields["token"])
    else:
        fields = {**fields, "token": "maker-revoked-token-xyz"}
    configure(d, **fields)
    d.wait_state("CONNECTING_CLOUD")
    d.wait_state("WAIT_CONFIG", last_error=703)
    return d, fields.get("blynk", fields.get("token"))


@pytest.mark.parametrize("profile", sorted(MQTT_PROFILES))
def test_mqtt_login_refused_is_703_and_setup_mode(device, cloudsim, profile, monkeypatch):
    d, _ = login_refused(device, cloudsim, profile, monkeypatch)
    assert "wifi" in d.store()


@pytest.mark.parametrize("profile", sorted(MQTT_PROFILES))
def test_a_refused_login_shows_its_token_in_neither_the_log_nor_the_events(device, cloudsim,
                                                                           profile, monkeypatch):
    # (the token is the MQTT user or password of every profile here)
    d, token = login_refused(device, cloudsim, profile, monkeypatch)
    seen = d.shown()
    assert token and "state CONNECTING_CLOUD" in seen  # (the log was written)
    assert token not in seen


# Replies with a well-formed status whose body has the wrong shape or types:
# per cloud operation, (status, body). None of them may reach the store.
BAD_BODIES = {
    "spokezone-renewal": [(201, {"token": 12345}), (201, {"token": "not.a.jwt"}),
                          (201, {"token": ""}), (201, {"token": ["a", "b"]})],
}


def credential_fields(d, operation):
    cloud = d.store()["cloud"]
    return {k: cloud.get(k) for k in CREDENTIALS[operation]}


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("operation", sorted(BAD_BODIES))
def test_reply_of_the_wrong_shape_keeps_credentials_retries_and_never_reboots(
        device, cloudsim, operation, case):
    bodies = BAD_BODIES[operation]
    status, doc = bodies[case % len(bodies)]
    make, path = OPERATIONS[operation]
    d, fields = make(device, cloudsim)
    # (held until the store is read, as in test_http_fault: a renewal that
    # gets through replaces the token)
    cloudsim.faults.add({"path": path, "kind": "shape", "status": status, "body": doc,
                         "count": -1})
    try:
        configure(d, **fields)
        d.wait_state("CONNECTING_CLOUD")
        kept = credential_fields(d, operation)
        retry = d.wait_note("retry_in")
        assert retry["last_error"] == 702
        assert credential_fields(d, operation) == kept
    finally:
        cloudsim.faults.clear()
    d.wait_state("RUNNING", timeout=30)
    assert d.restarts() == 0
    if operation == "spokezone-renewal":  # what the device uses is what the cloud issued
        assert d.store()["cloud"]["token"] != doc.get("token")


# What the device shows for each way a connection can fail before any reply:
# a name that does not resolve (710), a certificate it must refuse (711), and
# a handshake cut short, which is the network's fault, not the certificate's (702).


def first_retry(d, fields):
    configure(d, **fields)
    retry = d.wait_note("retry_in")
    assert d.store()["cloud"]["token"] == fields["blynk"]  # transient: nothing forgotten
    return retry["last_error"]


def test_a_name_that_does_not_resolve_is_710(device, cloudsim):
    # "a..b" is refused by the resolver itself: no packet leaves this machine
    d, fields = blynk_device(device, cloudsim, api="https://a..b/blynk")
    assert first_retry(d, fields) == 710


def test_a_certificate_from_another_ca_is_711(device, cloudsim, pki_dir):
    d, fields = blynk_device(device, cloudsim, ca=str(pki_dir / "ca.pem"))
    assert first_retry(d, fields) == 711


@pytest.mark.parametrize("field,missing", [("ca", False), ("cert", False), ("ca", True),
                                           ("cert", True), ("ca", "folder"),
                                           ("cert", "folder"), ("ca", "over 64 KB"),
                                           ("cert", "over 64 KB")],
                         ids=["ca", "cert", "ca missing", "cert missing", "ca a folder",
                              "cert a folder", "ca over 64 KB", "cert over 64 KB"])
def test_a_ca_or_device_certificate_file_that_does_not_load_is_700_naming_it(
        device, cloudsim, tmp_path, field, missing):
    cert, key = cloudsim.ca.issue_device("d")
    if missing == "folder":  # (a path that names a folder: it opens, no read works)
        (tmp_path / "bad.pem").mkdir()
    elif missing == "over 64 KB":  # (a good certificate, then more than a file may hold)
        good = (cloudsim.dir / "ca.pem").read_bytes() if field == "ca" else cert
        (tmp_path / "bad.pem").write_bytes(good + b"\n" * 65536)
    elif not missing:
        (tmp_path / "bad.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64!\n")
    (tmp_path / "device.key").write_bytes(key)
    bad = {"ca": str(tmp_path / "bad.pem")} if field == "ca" else {
        "cert": str(tmp_path / "bad.pem"), "key": str(tmp_path / "device.key")}
    d, fields = blynk_device(device, cloudsim, **bad)  # (setup mode opens: the file may come)
    assert first_retry(d, fields) == 700
    assert "config: %s: " % ("ca" if field == "ca" else "cert, key") in d.log_path.read_text()


def test_a_tls_handshake_cut_short_is_702_not_711(device, cloudsim):
    server = socket.create_server(("127.0.0.1", 0))
    closer = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
    closer.start()
    try:
        port = server.getsockname()[1]
        d, fields = blynk_device(device, cloudsim, api=f"https://127.0.0.1:{port}/blynk")
        assert first_retry(d, fields) == 702
    finally:
        server.close()
