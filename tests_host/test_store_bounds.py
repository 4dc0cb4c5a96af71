"""What put() refuses: a record over 8 KB counted in the file's UTF-8 bytes,
and numbers JSON cannot carry (inf, -inf, nan). A refused put raises a
ValueError naming the section or field and leaves the flash as it was, which
is checked by reading the file back through a fresh Store."""

import json

import pytest

SCRIPT = r"""
import json, os
from onboard.store import Store, MAX_BYTES

P = "onboard.json"
BEFORE = {"networks": [{"ssid": "home", "password": "pw-before-1"}]}


def fresh():
    for f in (P, P + ".prev", P + ".tmp"):
        try:
            os.remove(f)
        except OSError:
            pass
    s = Store(P)
    s.put("wifi", **BEFORE)
    s.writes = 0
    return s


def raw():
    with open(P, "rb") as f:
        return f.read()


def attempt(case, section, **fields):
    s = fresh()
    before = raw()
    try:
        s.put(section, **fields)
        error = None
    except ValueError as e:
        error = str(e)
    back = Store(P)
    rec = back.load()
    print(json.dumps({"case": case, "error": error, "writes": s.writes,
                      "file_unchanged": raw() == before, "status": back.status,
                      "wifi_kept": rec.get("wifi") == BEFORE, "size": len(raw()),
                      "fields": sorted(rec.get(section, {})),
                      "note": rec.get(section, {}).get("note") if section == "state" else None}))


# 2,800 x the euro sign: 2,800 characters, 8,400 bytes of UTF-8
attempt("euro-2800", "state", note="\u20ac" * 2800)
attempt("inf", "state", reading=float("inf"))
attempt("minus-inf", "cloud", expires_in=float("-inf"))
attempt("nan", "state", reading=float("nan"))
attempt("nan-nested", "wifi", networks=[{"ssid": "home", "rssi": [1.5, float("nan")]}])

# The bound itself: a record of exactly MAX_BYTES bytes is written and loads
# back; one byte more is refused. Filled with 3-byte characters and a few
# ASCII ones to land on the exact size.
s = fresh()
s.put("state", note="")
base = len(raw())
left = MAX_BYTES - base
euros, ascii = divmod(left, 3)
exact = "\u20ac" * euros + "a" * ascii
attempt("exactly-max", "state", note=exact)
attempt("max-plus-one", "state", note=exact + "a")
"""


@pytest.fixture(scope="module")
def cases(mpy_in):
    run = mpy_in("bounds").run(SCRIPT)
    return {d["case"]: d for d in (json.loads(x) for x in run.lines if x.startswith("{"))}


def test_2800_euro_signs_are_refused_at_put_naming_section_and_field(cases):
    error = cases["euro-2800"]["error"]
    assert error is not None and error.startswith("store: section 'state' (note) ")
    assert "over 8192" in error


def test_2800_euro_signs_write_nothing(cases):
    case = cases["euro-2800"]
    assert case["writes"] == 0
    assert case["file_unchanged"]
    assert (case["status"], case["wifi_kept"], case["fields"]) == ("ok", True, [])


@pytest.mark.parametrize("case,field", [("inf", "reading"), ("minus-inf", "expires_in"),
                                        ("nan", "reading"), ("nan-nested", "networks")])
def test_non_finite_number_is_refused_naming_the_field(cases, case, field):
    assert cases[case]["error"] == f"store: field '{field}' holds a number that is not finite"


@pytest.mark.parametrize("case", ["inf", "minus-inf", "nan", "nan-nested"])
def test_non_finite_number_writes_nothing(cases, case):
    got = cases[case]
    assert got["writes"] == 0
    assert got["file_unchanged"]
    assert (got["status"], got["wifi_kept"]) == ("ok", True)


def test_a_record_of_exactly_8192_bytes_is_written_and_loads_back(cases):
    case = cases["exactly-max"]
    assert case["error"] is None
    assert case["size"] == 8192
    assert (case["writes"], case["status"], case["wifi_kept"]) == (1, "ok", True)
    assert case["note"].startswith("\u20ac" * 2000) and case["note"].endswith("a")


def test_one_byte_over_8192_is_refused_and_writes_nothing(cases):
    case = cases["max-plus-one"]
    assert case["error"].startswith("store: section 'state' (note) would make the record 8193")
    assert (case["writes"], case["file_unchanged"], case["status"]) == (0, True, "ok")
