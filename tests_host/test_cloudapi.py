"""onboard.cloudapi's verdict on a cloud's HTTPS reply, and onboard.cloud's
renewal margins, under the Unix port: what each status, Retry-After and body
becomes (the profiles' tests and test_faults see them through a device)."""


import pytest
from conftest import json_cases
from servers import Server, json_reply

from cloudsim.pki import CA

SCRIPT = """
import json
from onboard.cloud import Rejected, Transient
from onboard import cloudapi


class Resp:
    def __init__(self, code, headers=None, text="{}"):
        self.status_code, self.headers, self.text = code, headers or {}, text

    def json(self):
        return json.loads(self.text)


def outcome(f, *args, **kw):
    try:
        r = f(*args, **kw)
        return ["ok", r if not isinstance(r, Resp) else r.status_code]
    except (Rejected, Transient) as e:
        return [type(e).__name__, list(e.args)]


for case in json.load(open("cases.json")):
    print(json.dumps(eval(case)))
"""


@pytest.fixture
def verdicts(mpy):
    return lambda *cases: json_cases(mpy, SCRIPT, cases)


@pytest.mark.parametrize(("code", "verdict"), [
    (200, ["ok", 200]), (201, ["ok", 201]), (299, ["ok", 299]),
    (199, ["Transient", ["activate", 0]]), (300, ["Transient", ["activate", 0]]),
    (401, ["Rejected", ["activate"]]), (403, ["Rejected", ["activate"]]),
    (404, ["Transient", ["activate", 0]]), (500, ["Transient", ["activate", 0]]),
])
def test_a_2xx_passes_401_and_403_are_rejected_the_rest_is_transient(verdicts, code, verdict):
    assert verdicts(f"outcome(cloudapi.judge, Resp({code}), 'activate')") == [verdict]


def test_the_refused_statuses_are_the_profiles_to_name(verdicts):
    assert verdicts("outcome(cloudapi.judge, Resp(404), 'claim', (404,))",
                    "outcome(cloudapi.judge, Resp(401), 'claim', (404,))") == [
        ["Rejected", ["claim"]], ["Transient", ["claim", 0]]]


@pytest.mark.parametrize(("code", "after", "seconds"), [
    (429, "5", 5), (503, "120", 120), (503, "3600", 3600), (429, "7200", 3600),
    (429, "-5", 0), (503, "soon", 0), (429, "", 0), (500, "5", 0), (502, "5", 0),
])
def test_retry_after_of_a_429_or_503_is_taken_within_0_to_an_hour(verdicts, code, after,
                                                                  seconds):
    assert verdicts(f"outcome(cloudapi.judge, Resp({code}, {{'retry-after': {after!r}}}), 's')"
                    ) == [["Transient", ["s", seconds]]]


def test_a_429_without_retry_after_retries_on_the_devices_own_backoff(verdicts):
    assert verdicts("outcome(cloudapi.judge, Resp(429), 's')") == [["Transient", ["s", 0]]]


def test_body_gives_the_named_fields_of_a_json_object(verdicts):
    assert verdicts("""outcome(cloudapi.body, Resp(200, text='{"a": 1, "b": "x", "c": 3}'),
                               's', 'b', 'a')""") == [["ok", ["x", 1]]]


@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2]", '"b"', "not json", ""])
def test_a_body_without_the_named_fields_of_an_object_is_transient(verdicts, text):
    assert verdicts(f"outcome(cloudapi.body, Resp(200, text={text!r}), 's', 'a', 'b')") == [
        ["Transient", ["s", 0]]]


@pytest.mark.parametrize(("value", "limit", "verdict"), [
    ("'t'", 4096, ["ok", "t"]), ("'x' * 4096", 4096, ["ok", "x" * 4096]),
    ("'x' * 4097", 4096, ["Transient", ["s", 0]]), ("'abc'", 3, ["ok", "abc"]),
    ("'abcd'", 3, ["Transient", ["s", 0]]), ("''", 4096, ["Transient", ["s", 0]]),
    ("5", 4096, ["Transient", ["s", 0]]), ("None", 4096, ["Transient", ["s", 0]]),
])
def test_text_takes_a_non_empty_string_within_its_limit(verdicts, value, limit, verdict):
    assert verdicts(f"outcome(cloudapi.text, {value}, 's', {limit})") == [verdict]


def test_text_is_bounded_to_4096_characters_by_default(verdicts):
    assert verdicts("outcome(cloudapi.text, 'x' * 4096, 's')[0]",
                    "outcome(cloudapi.text, 'x' * 4097, 's')[0]") == ["ok", "Transient"]


@pytest.mark.parametrize(("lifetime", "margin"), [
    (86400, 600), (3601, 600), (3600, 120), (241, 120), (240, 10), (21, 10), (20, 10),
    (11, 5), (1, 0),
])
def test_renewal_comes_a_margin_before_expiry_that_shrinks_with_the_lifetime(verdicts,
                                                                             lifetime, margin):
    assert verdicts(f"__import__('onboard.cloud').cloud.renew_margin({lifetime})") == [margin]


FETCH = """
import asyncio
from onboard import cloudapi
from onboard.net import tls_context


class RT:  # a runtime: its config, and the session's one TLS context
    config = {{"api": {api!r}, "ca": {config_ca!r}, "timeout_s": 10}}
    ctx = tls_context({session_ca!r})


async def main():
    try:
        r = await cloudapi.fetch(RT(), "GET", "/device")
        print(r.status_code)
    except OSError as e:
        print(type(e).__name__)

asyncio.run(main())
"""


def test_the_profiles_https_uses_the_sessions_tls_context(mpy, pki_dir, tmp_path):
    # the session's context trusts the server; the config's CA, which a
    # context of its own would be made from, does not: only the shared one works
    (tmp_path / "other.pem").write_bytes(CA("another CA").pem())
    server = Server(json_reply("{}"), tls=(pki_dir / "server.pem", pki_dir / "server.key"))
    try:
        out = mpy.run(FETCH.format(api=server.url("").rstrip("/"),
                                   config_ca=str(tmp_path / "other.pem"),
                                   session_ca=str(pki_dir / "ca.pem"))).lines
    finally:
        server.close()
    assert out == ["200"]
    assert server.received[0].startswith(b"GET /device HTTP/1.1\r\n")


def test_a_plain_http_api_is_asked_without_tls(mpy, pki_dir):
    # (a cloud on the local network, or a simulator)
    server = Server(json_reply("{}"))
    try:
        out = mpy.run(FETCH.format(api=server.url("").rstrip("/"), config_ca=None,
                                   session_ca=str(pki_dir / "ca.pem"))).lines
    finally:
        server.close()
    assert out == ["200"]
    assert server.received[0].startswith(b"GET /device HTTP/1.1\r\n")
