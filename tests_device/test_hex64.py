# onboard.hex64 on the board's own integer implementation.
import json

from tinytest import raises, summary, test

from onboard.hex64 import canonical


@test
def prefixed_mixed_case():
    assert canonical("0x1A2B3C4D5E6F7A8B") == "0x1a2b3c4d5e6f7a8b"


@test
def bare_and_short():
    assert canonical("ff") == "0x00000000000000ff"


@test
def largest_int():
    assert canonical(2**64 - 1) == "0xffffffffffffffff"


@test
def json_number_above_2_53_is_exact():
    assert canonical(json.loads("12345678901234567891")) == "0xab54a98ceb1f0ad3"


@test
def rejects_name_the_field():
    for bad in ("", "0x", "-1", "0x1g", " 12", "1" * 17, 2**64):
        e = raises(ValueError, canonical, bad, "plan_id")
        assert str(e).startswith("plan_id: ")


summary()
