"""What the Spoke Zone profile reads from a device token and from setup,
run on the Unix port: the claims it takes (exp, sub or id, iat, prefix) and
the bounds it holds them to, the uuid and cpu_id setup stores, when a stored
token is due for renewal, and which downlink opens setup mode. Each case is
the profile's answer (or the ValueError it raises) for one input."""

import json

import pytest

SCRIPT = r"""
import json
from answers import answer
from binascii import b2a_base64
from onboard.clouds.spokezone import token_claims, check, due, downlink

EXP = 2000000000


def jwt(**claims):
    body = b2a_base64(json.dumps(claims).encode()).decode().strip().rstrip("=")
    return "e30." + body.replace("+", "-").replace("/", "_") + ".sig"


answer("plain", lambda: token_claims(jwt(exp=EXP, iat=EXP - 7200, sub=42)))
answer("id-claim", lambda: token_claims(jwt(exp=EXP, iat=EXP - 60, id=7)))
answer("sub-before-id", lambda: token_claims(jwt(exp=EXP, iat=EXP - 60, sub=5, id=9)))
answer("string-numbers", lambda: token_claims(jwt(exp=" 2000000000 ", iat="1999999000", sub="12")))
answer("decimal-string", lambda: token_claims(jwt(exp="2000000000.75", iat=EXP - 60, sub=3)))
answer("float-number", lambda: token_claims(jwt(exp=2000000000.75, iat=EXP - 60, sub=3)))
answer("bool-id", lambda: token_claims(jwt(exp=EXP, sub=True)))
answer("bool-exp", lambda: token_claims(jwt(exp=True, sub=4)))
answer("id-zero", lambda: token_claims(jwt(exp=EXP, sub=0)))
answer("id-one", lambda: token_claims(jwt(exp=EXP, iat=EXP - 60, sub=1)))
answer("id-largest", lambda: token_claims(jwt(exp=EXP, iat=EXP - 60, sub=(1 << 53) - 1)))
answer("id-too-large", lambda: token_claims(jwt(exp=EXP, sub=1 << 53)))
answer("no-iat", lambda: token_claims(jwt(exp=EXP, sub=8)))
answer("iat-after-exp", lambda: token_claims(jwt(exp=EXP, iat=EXP + 50, sub=8)))
answer("iat-at-exp", lambda: token_claims(jwt(exp=EXP, iat=EXP, sub=8)))
answer("prefix", lambda: token_claims(jwt(exp=EXP, iat=EXP - 60, sub=8, prefix="acme/d/8")))
answer("prefix-empty", lambda: token_claims(jwt(exp=EXP, iat=EXP - 60, sub=8, prefix="")))
answer("prefix-128", lambda: token_claims(jwt(exp=EXP, iat=EXP - 60, sub=8, prefix="p" * 128)))
answer("prefix-129", lambda: token_claims(jwt(exp=EXP, sub=8, prefix="p" * 129)))
answer("prefix-number", lambda: token_claims(jwt(exp=EXP, sub=8, prefix=5)))
answer("no-exp", lambda: token_claims(jwt(sub=8)))
answer("no-id", lambda: token_claims(jwt(exp=EXP)))
answer("field-named", lambda: token_claims(jwt(exp=EXP), "new"))

TOKEN = jwt(exp=EXP, iat=EXP - 60, sub=8)
answer("check", lambda: check({"token": TOKEN, "uuid": "u-1"}, {}))
answer("check-cpu-id", lambda: check({"token": TOKEN, "uuid": "u-1", "cpu_id": "c" * 70}, {}))
answer("check-bad-token", lambda: check({"token": "x.y", "uuid": "u-1"}, {}))
answer("check-no-uuid", lambda: check({"token": TOKEN}, {}))
answer("check-uuid-1", lambda: check({"token": TOKEN, "uuid": "u"}, {})["uuid"])
answer("check-uuid-64", lambda: check({"token": TOKEN, "uuid": "u" * 64}, {})["uuid"])
answer("check-uuid-65", lambda: check({"token": TOKEN, "uuid": "u" * 65}, {}))

answer("due-stored", lambda: due({"renew": [EXP, 1999990000]}, EXP))
answer("due-none-stored", lambda: due({}, EXP))
answer("due-other-token", lambda: due({"renew": [EXP - 1, 1999990000]}, EXP))
answer("due-not-a-pair", lambda: due({"renew": [EXP, 1999990000, 1]}, EXP))
answer("due-not-a-list", lambda: due({"renew": (EXP, 1999990000)}, EXP))
answer("due-at-not-int", lambda: due({"renew": [EXP, "1999990000"]}, EXP))

answer("down-reconfigure", lambda: downlink({}, b"mrs/d/8/ctrl/reconfigure", b""))
answer("down-other", lambda: downlink({}, b"mrs/d/8/ctrl/led", b"on"))
"""

EXP = 2000000000
NOT_A_TOKEN = "token: not a Spoke Zone device token"


@pytest.fixture(scope="module")
def cases(mpy_in):
    run = mpy_in("spokezone_claims").run(SCRIPT)
    return {d["case"]: d for d in (json.loads(x) for x in run.lines if x.startswith("{"))}


def test_claims_give_expiry_lifetime_device_id_and_default_prefix(cases):
    assert cases["plain"]["out"] == [EXP, 7200, 42, "mrs/d/42"]


def test_device_id_comes_from_id_when_there_is_no_sub(cases):
    assert cases["id-claim"]["out"] == [EXP, 60, 7, "mrs/d/7"]


def test_sub_is_the_device_id_when_both_sub_and_id_are_given(cases):
    assert cases["sub-before-id"]["out"] == [EXP, 60, 5, "mrs/d/5"]


def test_claims_written_as_digit_strings_are_read_as_numbers(cases):
    assert cases["string-numbers"]["out"] == [EXP, 1000, 12, "mrs/d/12"]


@pytest.mark.parametrize("case", ["decimal-string", "float-number"])
def test_a_fractional_expiry_is_cut_to_whole_seconds(cases, case):
    assert cases[case]["out"] == [EXP, 60, 3, "mrs/d/3"]


@pytest.mark.parametrize("case", ["bool-id", "bool-exp", "id-zero", "id-too-large",
                                  "prefix-129", "prefix-number", "no-exp", "no-id"])
def test_a_token_whose_claims_do_not_hold_is_refused_naming_the_field(cases, case):
    assert cases[case] == {"case": case, "out": None, "error": NOT_A_TOKEN}


@pytest.mark.parametrize("case,device_id", [("id-one", 1), ("id-largest", (1 << 53) - 1)])
def test_device_ids_at_both_ends_of_the_range_are_taken(cases, case, device_id):
    assert cases[case]["out"][2] == device_id


def test_a_token_without_iat_is_taken_to_live_one_hour(cases):
    assert cases["no-iat"]["out"][1] == 3600


@pytest.mark.parametrize("case", ["iat-after-exp", "iat-at-exp"])
def test_a_lifetime_that_is_not_positive_counts_as_one_second(cases, case):
    assert cases[case]["out"][1] == 1


def test_the_token_prefix_claim_is_the_mqtt_prefix(cases):
    assert cases["prefix"]["out"][3] == "acme/d/8"


def test_an_empty_prefix_claim_gives_the_default_prefix(cases):
    assert cases["prefix-empty"]["out"][3] == "mrs/d/8"


def test_a_prefix_of_128_characters_is_taken(cases):
    assert cases["prefix-128"]["out"][3] == "p" * 128


def test_the_error_names_the_field_it_was_given(cases):
    assert cases["field-named"]["error"] == "new: not a Spoke Zone device token"


def test_setup_stores_token_and_uuid_and_drops_the_old_renewal_schedule(cases):
    token = cases["check"]["out"]["token"]
    assert cases["check"]["out"] == {"token": token, "uuid": "u-1", "renew": None}


def test_setup_keeps_the_first_64_characters_of_a_cpu_id(cases):
    assert cases["check-cpu-id"]["out"]["cpu_id"] == "c" * 64


def test_setup_refuses_a_token_that_is_not_a_jwt_naming_the_field(cases):
    assert cases["check-bad-token"]["error"] == "token: not a JWT"


@pytest.mark.parametrize("case", ["check-no-uuid", "check-uuid-65"])
def test_setup_refuses_a_missing_or_over_long_uuid(cases, case):
    assert cases[case]["error"] == "uuid: required"


@pytest.mark.parametrize("case,length", [("check-uuid-1", 1), ("check-uuid-64", 64)])
def test_setup_takes_a_uuid_of_1_to_64_characters(cases, case, length):
    assert cases[case]["out"] == "u" * length


def test_a_stored_renewal_time_for_this_token_is_when_it_is_due(cases):
    assert cases["due-stored"]["out"] == 1999990000


@pytest.mark.parametrize("case", ["due-none-stored", "due-other-token", "due-not-a-pair",
                                  "due-not-a-list", "due-at-not-int"])
def test_without_a_valid_stored_time_renewal_is_due_12_h_before_expiry(cases, case):
    assert cases[case]["out"] == EXP - 12 * 3600


def test_the_reconfigure_downlink_opens_setup_mode(cases):
    assert cases["down-reconfigure"]["out"] == [1]


def test_other_downlinks_are_left_to_the_application(cases):
    assert cases["down-other"] == {"case": "down-other", "out": None, "error": None}
