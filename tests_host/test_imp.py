"""onboard.clouds.imp: imp-style enrolment tokens and Wi-Fi set from code."""

import json

SETUP = """
import json
from onboard.store import Store
from onboard.clouds import imp
P = "onboard.json"
"""


def run(mpy, code):
    return [json.loads(x) for x in mpy.run(SETUP + code).lines if x.startswith(("{", "["))]


def test_enrol_tokens_are_stored_canonical_and_survive_a_cold_boot(mpy):
    (enrol,) = run(mpy, """
imp.set_enrol_tokens(Store(P), "0x1A2B3C4D5E6F7A8B", 0xC0FFEE)
print(json.dumps(Store(P).get("enrol")))
""")
    assert enrol == {"plan_id": "0x1a2b3c4d5e6f7a8b", "token": "0x0000000000c0ffee"}


def test_a_bad_token_stores_nothing(mpy):
    out = run(mpy, """
s = Store(P)
imp.set_enrol_tokens(s, "0x01", "0x02")
try:
    imp.set_enrol_tokens(s, "0x03", "0x1g")
except ValueError as e:
    print(json.dumps([str(e)]))
print(json.dumps({"enrol": Store(P).get("enrol"), "writes": s.writes}))
""")
    assert out == [["token: not hexadecimal"],
                   {"enrol": {"plan_id": "0x0000000000000001", "token": "0x0000000000000002"},
                    "writes": 1}]


def test_wifi_configuration_puts_the_network_first_and_a_later_one_overrides(mpy):
    out = run(mpy, """
s = Store(P)
imp.set_wifi_configuration(s, "cafe", "")
imp.set_wifi_configuration(s, "home", "password-1")
print(json.dumps(Store(P).get("wifi")["networks"]))
imp.set_wifi_configuration(s, "cafe", "")
print(json.dumps(Store(P).get("wifi")["networks"]))
""")
    assert out[0] == [{"ssid": "home", "password": "password-1"}, {"ssid": "cafe", "password": ""}]
    assert out[1] == [{"ssid": "cafe", "password": ""}, {"ssid": "home", "password": "password-1"}]


def test_saved_networks_are_capped_at_eight_most_recent_first(mpy):
    (nets,) = run(mpy, """
s = Store(P)
for i in range(10):
    imp.set_wifi_configuration(s, "net%d" % i, "password-%d" % i)
print(json.dumps([n["ssid"] for n in Store(P).get("wifi")["networks"]]))
""")
    assert nets == ["net9", "net8", "net7", "net6", "net5", "net4", "net3", "net2"]


def test_clear_wifi_keeps_the_enrolment(mpy):
    (after,) = run(mpy, """
s = Store(P)
imp.set_wifi_configuration(s, "home", "password-1")
imp.set_enrol_tokens(s, "0x01", "0x02")
imp.clear_configuration(s, imp.CONFIG_WIFI)
print(json.dumps(Store(P).load()))
""")
    assert after == {"enrol": {"plan_id": "0x0000000000000001", "token": "0x0000000000000002"}}


def test_clear_all_forgets_wifi_enrolment_and_cloud_but_keeps_state(mpy):
    (after,) = run(mpy, """
s = Store(P)
imp.set_wifi_configuration(s, "home", "password-1")
imp.set_enrol_tokens(s, "0x01", "0x02")
s.put("cloud", device_id="abc")
s.put("state", boots=3)
imp.clear_configuration(s)
print(json.dumps(Store(P).load()))
""")
    assert after == {"state": {"boots": 3}}


def test_clear_all_leaves_no_previous_generation_with_the_secrets(mpy):
    (files,) = run(mpy, """
import os
s = Store(P)
imp.set_enrol_tokens(s, "0x01", "0x02")
imp.set_enrol_tokens(s, "0x01", "0x03")
imp.clear_configuration(s)
print(json.dumps(sorted(f for f in os.listdir() if f.startswith(P))))
""")
    assert files == ["onboard.json"]


def test_wifi_credentials_are_validated(mpy):
    errors = run(mpy, """
s = Store(P)
for ssid, key in (("", "password-1"), ("x" * 33, "password-1"), ("home", "short!"),
                  ("home", "p" * 64), ("home", "tab\\tinside"), ("h\u00e9" * 11, "")):
    try:
        imp.set_wifi_configuration(s, ssid, key)
        print(json.dumps(["accepted", ssid]))
    except ValueError as e:
        print(json.dumps([str(e)]))
print(json.dumps({"writes": s.writes}))
""")
    assert errors[:5] == [
        ["ssid: must be 1-32 bytes of text"],
        ["ssid: must be 1-32 bytes of text"],
        ["password: must be 8-63 characters, 64 hex digits, a WEP key, or empty"],
        ["password: 64 characters must all be hex digits"],
        ["password: must be printable ASCII"],
    ]
    # 11 two-byte characters plus 11 ASCII: 33 bytes although 22 characters
    assert errors[5] == ["ssid: must be 1-32 bytes of text"]
    assert errors[6] == {"writes": 0}


def test_clear_with_an_unknown_what_is_refused_naming_it_and_keeps_everything(mpy):
    out = run(mpy, """
s = Store(P)
imp.set_wifi_configuration(s, "home", "password-1")
imp.set_enrol_tokens(s, "0x01", "0x02")
try:
    imp.clear_configuration(s, 2)
except ValueError as e:
    print(json.dumps([str(e)]))
print(json.dumps(Store(P).load()))
""")
    assert out == [["what: must be CONFIG_WIFI or CONFIG_ALL"],
                   {"wifi": {"networks": [{"ssid": "home", "password": "password-1"}]},
                    "enrol": {"plan_id": "0x0000000000000001", "token": "0x0000000000000002"}}]
