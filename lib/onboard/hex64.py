# 64-bit enrolment tokens and plan IDs <-> canonical hex strings.
#
# Electric Imp style tokens are 64-bit numbers that JSON and most languages
# cannot carry exactly, so onboard keeps them as "0x%016x" strings. Error
# messages name the field and never repeat the value: it may be a secret.
from micropython import const

_MAX_DIGITS = const(16)
_HEX = const(b"0123456789abcdefABCDEF")
MAX = 0xFFFFFFFFFFFFFFFF


def canonical(value, field="token"):
    """Return value as "0x" + 16 lower-case hex digits, or raise ValueError.

    value: "0x"-prefixed or bare hex of 1-16 digits in any case, or an int
    in [0, 2**64) (a JSON number from a server parses to an exact int).
    """
    if isinstance(value, int):  # (not a bool: MicroPython's bool is no int here)
        if value < 0 or value > MAX:
            raise ValueError("%s: out of the 64-bit range" % field)
        return "0x%016x" % value
    if not isinstance(value, str):
        raise ValueError("%s: must be a hex string or an integer" % field)
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    if not digits:
        raise ValueError("%s: empty" % field)
    if len(digits) > _MAX_DIGITS:
        raise ValueError("%s: more than 64 bits" % field)
    for c in digits.encode():  # (bytes: a str's characters would each become a qstr)
        if c not in _HEX:
            raise ValueError("%s: not hexadecimal" % field)
    return "0x%016x" % int(digits, 16)

