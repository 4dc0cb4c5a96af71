"""What the Blynk profile takes from setup and from a redirect, run on the
Unix port: the auth token's form, when a token must be activated again, the
host and app ports setup may give, the redirect targets it follows and the
downlinks it handles. Each case is the profile's answer (or the ValueError
it raises) for one input."""

import json

import pytest

SCRIPT = r"""
from answers import answer
from onboard.clouds.blynk import check, redirect, downlink

T = "Ab-_" + "x" * 28  # 32 characters


answer("token", lambda: check({"blynk": T}, {}))
answer("token-31", lambda: check({"blynk": T[:31]}, {}))
answer("token-33", lambda: check({"blynk": T + "x"}, {}))
answer("token-space", lambda: check({"blynk": T[:31] + " "}, {}))
answer("token-same", lambda: check({"blynk": T}, {}, {"token": T, "activated": True}))
answer("token-other", lambda: check({"blynk": T}, {}, {"token": "y" * 32, "activated": True}))
answer("host", lambda: check({"blynk": T, "host": "ny3.blynk.cloud"}, {}))
answer("host-64", lambda: check({"blynk": T, "host": "h" * 64}, {})["host"])
answer("host-65", lambda: check({"blynk": T, "host": "h" * 65}, {}))
answer("host-slash", lambda: check({"blynk": T, "host": "a/b"}, {}))
answer("ports", lambda: check({"blynk": T, "port": "80", "port_ssl": "443"}, {}))
answer("port-1", lambda: check({"blynk": T, "port_ssl": "1"}, {})["app_port_ssl"])
answer("port-65535", lambda: check({"blynk": T, "port": "65535"}, {})["app_port"])
answer("port-65536", lambda: check({"blynk": T, "port": "65536"}, {}))
answer("port-ssl-0", lambda: check({"blynk": T, "port_ssl": "0"}, {}))
answer("port-word", lambda: check({"blynk": T, "port": "http"}, {}))

answer("redirect-plain", lambda: redirect(b"ny3.blynk.cloud:8883"))
answer("redirect-mqtts", lambda: redirect(b"mqtts://ny3.blynk.cloud:8883/"))
answer("redirect-mqtt", lambda: redirect(b"mqtt://ny3.blynk.cloud:1883"))
answer("redirect-tls", lambda: redirect(b"tls://ny3.blynk.cloud:8883"))
answer("redirect-tcp", lambda: redirect(b"tcp://ny3.blynk.cloud:1883"))
answer("redirect-wss", lambda: redirect(b"wss://ny3.blynk.cloud:443"))
answer("redirect-https", lambda: redirect(b"https://ny3.blynk.cloud:443"))
answer("redirect-no-port", lambda: redirect(b"ny3.blynk.cloud"))
answer("redirect-no-host", lambda: redirect(b":8883"))
answer("redirect-port-0", lambda: redirect(b"h:0"))
answer("redirect-port-1", lambda: redirect(b"h:1"))
answer("redirect-port-65535", lambda: redirect(b"h:65535"))
answer("redirect-port-65536", lambda: redirect(b"h:65536"))
answer("redirect-host-64", lambda: redirect(b"h" * 64 + b":1"))
answer("redirect-host-65", lambda: redirect(b"h" * 65 + b":1"))
answer("redirect-not-utf8", lambda: redirect(b"\xff:1"))

answer("down-redirect", lambda: downlink({}, b"downlink/redirect", b"mqtt://h2:1883"))
answer("down-redirect-bad", lambda: downlink({}, b"downlink/redirect", b"nowhere"))
answer("down-reconfigure", lambda: downlink({}, b"downlink/reconfigure", b""))
answer("down-reboot", lambda: downlink({}, b"downlink/reboot", b""))
answer("down-ping", lambda: downlink({}, b"downlink/ping", b""))
answer("down-other", lambda: downlink({}, b"downlink/ds/led", b"1"))


def unknown_name():
    from onboard.clouds import blynk

    try:
        from onboard.clouds.blynk import bye  # noqa
    except (ImportError, AttributeError) as e:
        return [hasattr(blynk, "bye"), type(e).__name__]
    return [hasattr(blynk, "bye"), "imported"]


answer("unknown-name", unknown_name)
"""

T = "Ab-_" + "x" * 28
TOKEN_ERROR = "blynk: must be 32 characters of A-Z a-z 0-9 - _"
HANDLED, RECONFIGURE, REBOOT, REDIRECT = 0, 1, 2, 3


@pytest.fixture(scope="module")
def cases(mpy_in):
    run = mpy_in("blynk_fields").run(SCRIPT)
    return {d["case"]: d for d in (json.loads(x) for x in run.lines if x.startswith("{"))}


def test_a_new_32_character_token_is_taken_and_marked_for_activation(cases):
    assert cases["token"]["out"] == {"token": T, "activated": None}


@pytest.mark.parametrize("case", ["token-31", "token-33", "token-space"])
def test_a_token_of_another_length_or_alphabet_is_refused_naming_the_field(cases, case):
    assert cases[case]["error"] == TOKEN_ERROR


def test_a_name_the_profile_does_not_have_is_absent_and_importing_it_fails(cases):
    # as from any module: a misspelt name fails where it is imported (MicroPython
    # raises the module __getattr__'s AttributeError there, CPython an ImportError)
    assert cases["unknown-name"]["out"] == [False, "AttributeError"]


def test_the_same_token_again_keeps_its_activation(cases):
    assert cases["token-same"]["out"] == {"token": T}


def test_another_token_is_activated_again(cases):
    assert cases["token-other"]["out"] == {"token": T, "activated": None}


def test_a_host_from_setup_replaces_the_mqtt_host_port_scheme_and_redirects_home(cases):
    assert cases["host"]["out"] == {"token": T, "activated": None, "host": "ny3.blynk.cloud",
                                    "port": None, "tls": None, "home": None}


def test_a_host_of_64_characters_is_taken(cases):
    assert cases["host-64"]["out"] == "h" * 64


@pytest.mark.parametrize("case", ["host-65", "host-slash"])
def test_a_host_that_is_not_a_host_name_is_refused_naming_the_field(cases, case):
    assert cases[case]["error"] == "host: not a host name"


def test_app_ports_from_setup_are_kept_apart_from_the_mqtt_port(cases):
    assert cases["ports"]["out"] == {"token": T, "activated": None, "app_port": 80,
                                     "app_port_ssl": 443}


@pytest.mark.parametrize("case,port", [("port-1", 1), ("port-65535", 65535)])
def test_ports_1_to_65535_are_taken(cases, case, port):
    assert cases[case]["out"] == port


@pytest.mark.parametrize("case,field", [("port-65536", "port"), ("port-ssl-0", "port_ssl"),
                                        ("port-word", "port")])
def test_a_port_out_of_range_or_not_a_number_is_refused_naming_the_field(cases, case, field):
    assert cases[case]["error"] == f"{field}: not a port number"


@pytest.mark.parametrize("case,expected", [
    ("redirect-plain", {"host": "ny3.blynk.cloud", "port": 8883, "tls": True}),
    ("redirect-mqtts", {"host": "ny3.blynk.cloud", "port": 8883, "tls": True}),
    ("redirect-mqtt", {"host": "ny3.blynk.cloud", "port": 1883, "tls": False}),
    ("redirect-tls", {"host": "ny3.blynk.cloud", "port": 8883, "tls": True}),
    ("redirect-tcp", {"host": "ny3.blynk.cloud", "port": 1883, "tls": False}),
    ("redirect-port-1", {"host": "h", "port": 1, "tls": True}),
    ("redirect-port-65535", {"host": "h", "port": 65535, "tls": True}),
    ("redirect-host-64", {"host": "h" * 64, "port": 1, "tls": True}),
])
def test_a_redirect_target_gives_host_port_and_tls(cases, case, expected):
    assert cases[case]["out"] == expected


@pytest.mark.parametrize("case", ["redirect-https", "redirect-wss", "redirect-no-port",
                                  "redirect-no-host", "redirect-port-0", "redirect-port-65536",
                                  "redirect-host-65", "redirect-not-utf8"])
def test_a_redirect_that_is_not_an_mqtt_target_is_not_followed(cases, case):
    assert cases[case] == {"case": case, "out": None, "error": None}


def test_a_redirect_downlink_hands_the_runtime_its_target(cases):
    assert cases["down-redirect"]["out"] == [REDIRECT, {"host": "h2", "port": 1883,
                                                        "tls": False}]


def test_a_redirect_downlink_without_a_target_is_handled_and_ignored(cases):
    assert cases["down-redirect-bad"]["out"] == [HANDLED]


@pytest.mark.parametrize("case,outcome", [("down-reconfigure", [RECONFIGURE]),
                                          ("down-reboot", [REBOOT]), ("down-ping", [HANDLED])])
def test_blynk_downlinks_are_answered_by_the_runtime(cases, case, outcome):
    assert cases[case]["out"] == outcome


def test_other_downlinks_are_left_to_the_application(cases):
    assert cases["down-other"] == {"case": "down-other", "out": None, "error": None}
