"""onboard.errors.wrap under the Unix port: what each failure of a request
becomes, named by host and phase (the clients' tests meet these through a
server; here each kind is made directly)."""

import pytest
from conftest import json_cases

SCRIPT = """
import json
from onboard import errors

for case in json.load(open("cases.json")):
    e = errors.wrap(eval(case), "api.example", "tls")
    print(json.dumps([type(e).__name__, str(e), isinstance(e, OSError)]))
"""


@pytest.fixture
def wrapped(mpy):
    return lambda *cases: json_cases(mpy, SCRIPT, cases)


@pytest.mark.parametrize("errno", [11, 110, 116])
def test_eagain_and_etimedout_are_a_timeout(wrapped, errno):
    # (11 EAGAIN, a socket timeout; 110 ETIMEDOUT on Linux, 116 on lwIP)
    assert wrapped(f"OSError({errno})") == [["Timeout", "api.example: tls: timed out", True]]


@pytest.mark.parametrize("errno", [104, 113, 111, 12])
def test_any_other_errno_is_a_net_error_naming_it(wrapped, errno):
    assert wrapped(f"OSError({errno})") == [["NetError", f"api.example: tls: error {errno}", True]]


def test_an_oserror_without_an_errno_is_error_0(wrapped):
    assert wrapped("OSError()") == [["NetError", "api.example: tls: error 0", True]]


def test_mbedtlss_refusal_in_the_tls_phase_is_a_tls_error_with_its_reason(wrapped):
    assert wrapped("ValueError(' The certificate validity has expired ')") == [
        ["TLSError", "api.example: tls: certificate refused: The certificate validity has expired",
         True]]


def test_a_connection_closed_is_a_protocol_error(wrapped):
    assert wrapped("EOFError()") == [["ProtocolError", "api.example: tls: connection closed", True]]


def test_what_is_already_a_net_error_or_no_oserror_is_given_back_as_it_is(wrapped):
    assert wrapped("errors.DNSError('h: dns: x')", "KeyError('k')", "MemoryError()") == [
        ["DNSError", "h: dns: x", True], ["KeyError", "k", False], ["MemoryError", "", False]]


def test_a_value_error_outside_the_tls_phase_is_given_back_as_it_is(mpy):
    out = mpy.run("""
        from onboard import errors
        e = errors.wrap(ValueError("bad"), "h", "read")
        print(type(e).__name__, e)
    """).lines
    assert out == ["ValueError bad"]
