"""onboard.hex64.canonical: 64-bit tokens as canonical "0x%016x" strings."""

import json

import pytest

ACCEPTED = {
    '"0x1A2B3C4D5E6F7A8B"': "0x1a2b3c4d5e6f7a8b",
    '"0x1a2b3c4d5e6f7a8b"': "0x1a2b3c4d5e6f7a8b",
    '"1A2B3C4D5E6F7A8B"': "0x1a2b3c4d5e6f7a8b",
    '"0X00ff"': "0x00000000000000ff",
    '"f"': "0x000000000000000f",
    "0": "0x0000000000000000",
    "2**64 - 1": "0xffffffffffffffff",
    "0x1a2b3c4d5e6f7a8b": "0x1a2b3c4d5e6f7a8b",
    # a JSON number above 2**53 from a server parses to an exact int
    'json.loads(\'{"token_id": 12345678901234567891}\')["token_id"]': "0xab54a98ceb1f0ad3",
    'json.loads("18446744073709551615")': "0xffffffffffffffff",
}

REJECTED = ['""', '"0x"', '"-1"', '"0x1g"', '" 12"', '"12 "', '"1" * 17', "2**64", "-1",
            '"+12"', '"0x-1"', '"1_0"', "True", "None", "1.5", 'b"12"']

SCRIPT = r"""
import json
from onboard.hex64 import canonical
for expr in %r:
    try:
        print(json.dumps({"expr": expr, "ok": canonical(eval(expr), "plan_id")}))
    except ValueError as e:
        print(json.dumps({"expr": expr, "error": str(e)}))
"""


@pytest.fixture(scope="module")
def results(mpy_in):
    run = mpy_in("hex64").run(SCRIPT % (list(ACCEPTED) + REJECTED))
    return {d["expr"]: d for d in map(json.loads, run.lines)}


@pytest.mark.parametrize("expr", list(ACCEPTED))
def test_accepted_values_become_canonical(results, expr):
    assert results[expr] == {"expr": expr, "ok": ACCEPTED[expr]}


@pytest.mark.parametrize("expr", REJECTED)
def test_rejected_values_raise_value_error_naming_the_field(results, expr):
    error = results[expr].get("error")
    assert error is not None, f"{expr} was accepted as {results[expr].get('ok')}"
    assert error.startswith("plan_id: ")

