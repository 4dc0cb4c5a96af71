"""onboard.jwt.claims: a JWT's claims read (not verified) under the Unix port;
anything else is a ValueError naming the field, never the token."""

import base64
import json

import pytest
from conftest import json_cases

CLAIMS_MAX = 2048  # characters of the claims part read at most


def _part(doc_text):
    return base64.urlsafe_b64encode(doc_text.encode()).decode().rstrip("=")


def _token(claims_text):
    return _part('{"alg":"HS256"}') + "." + _part(claims_text) + ".c2ln"


def _object_of(length):
    """The text of a JSON object length bytes long."""
    return '{"a":"' + "x" * (length - 8) + '"}'


@pytest.fixture
def claims(mpy):
    return lambda *tokens: json_cases(mpy, """
import json
from onboard.jwt import claims
for t in json.load(open("cases.json")):
    try:
        print(json.dumps({"ok": claims(t, "access_token")}))
    except ValueError as e:
        print(json.dumps({"error": str(e)}))
""", tokens)


def test_the_claims_of_a_jwt_are_read_as_a_dict(claims):
    assert claims(_token('{"sub":"dev-1","exp":1900000000}')) == [
        {"ok": {"sub": "dev-1", "exp": 1900000000}}]


def test_claims_are_read_in_base64url_whose_alphabet_has_minus_and_underscore(claims):
    text = '{"prefix":"~~~???>>>"}'
    assert "-" in _part(text) and "_" in _part(text)  # (where base64 has + and /)
    assert claims(_token(text)) == [{"ok": {"prefix": "~~~???>>>"}}]


def test_a_claims_part_up_to_the_bound_is_read_and_one_past_it_refused(claims):
    at, past = _object_of(CLAIMS_MAX * 3 // 4), _object_of(CLAIMS_MAX * 3 // 4 + 1)
    assert len(_part(at)) == CLAIMS_MAX and len(_part(past)) == CLAIMS_MAX + 2
    # (a 2049-character part is no base64: the first length past the bound is 2050)
    out = claims(_token(at), _token(past),
                 _part("x" * (CLAIMS_MAX * 3 // 4 + 1)) + "." + _part('{"a":1}') + ".c2ln")
    assert out[0] == {"ok": json.loads(at)}
    assert out[1:] == [{"error": "access_token: not a JWT"}, {"ok": {"a": 1}}]


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", None, 5])
def test_what_is_not_three_parts_is_refused_naming_the_field(claims, token):
    assert claims(token) == [{"error": "access_token: not a JWT"}]


@pytest.mark.parametrize("claims_text", ["[1]", '"sub"', "5", "null"])
def test_claims_that_are_json_but_no_object_are_refused(claims, claims_text):
    assert claims(_token(claims_text)) == [{"error": "access_token: not a JWT"}]


@pytest.mark.parametrize("claims_part", [
    "!!not-base64!!", _part("{not json"),
    base64.urlsafe_b64encode(b'{"a":"\xff"}').decode().rstrip("="), "A"],
    ids=["no base64", "no json", "no utf-8", "one character"])
def test_claims_that_do_not_decode_are_refused_naming_the_field_not_the_token(claims,
                                                                              claims_part):
    token = _part('{"alg":"HS256"}') + "." + claims_part + ".sig-5ecret"
    assert claims(token) == [{"error": "access_token: not a JWT"}]
