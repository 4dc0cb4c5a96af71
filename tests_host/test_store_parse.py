"""Store files whose checksum holds but whose content or size does not:
load() passes over each, names why in Store.problems and falls back to the
previous generation, never raising (also when the current file cannot be
opened at all). The files are made here with a correct CRC, so only the
checks after the checksum can refuse them."""

import json

import pytest

SCRIPT = r"""
import json, os
from binascii import crc32
from onboard.store import Store

GOOD = {"wifi": {"networks": [{"ssid": "home", "password": "pw-previous-1"}]}}


def signed(rest, sep=b'",'):
    return b'{"crc":"%08x' % (crc32(rest) & 0xFFFFFFFF) + sep + rest


def two_generations(P):
    s = Store(P)
    s.put("wifi", **GOOD["wifi"])
    s.put("meta", note="current")  # the current file, replaced by the caller


def report(case, back, loads=1):
    try:
        for _ in range(loads):
            got, error = back.load(), None
    except Exception as e:
        got, error = None, repr(e)
    print(json.dumps({"case": case, "error": error, "status": back.status,
                      "problems": [why for _, why in back.problems], "previous": got == GOOD}))


def attempt(case, raw, loads=1):
    P = case + ".json"  # a flash of its own
    two_generations(P)
    with open(P, "wb") as f:
        f.write(raw)
    report(case, Store(P), loads)


attempt("not-json", signed(b'"v":1,"gen":3,"data":{"wifi":{}'))
attempt("gen-negative", signed(b'"v":1,"gen":-1,"data":{}}'))
attempt("gen-text", signed(b'"v":1,"gen":"3","data":{}}'))
attempt("data-list", signed(b'"v":1,"gen":3,"data":[]}'))
attempt("section-list", signed(b'"v":1,"gen":3,"data":{"wifi":[]}}'))
attempt("separator", signed(b'"v":1,"gen":3,"data":{}}', sep=b'";'))
# a whole record, checksum and all, but over the 8 KB that load() reads
attempt("oversize", signed(b'"v":1,"gen":3,"data":{"meta":{"note":"%s"}}}' % (b"a" * 9000)))

# generation 0 is a generation like any other (an empty store is at 0)
attempt("gen-zero", signed(b'"v":1,"gen":0,"data":{"meta":{"note":"zero"}}}'))

# loaded twice: the problems are those of the last load, not both
attempt("loaded-twice", signed(b'"v":1,"gen":3,"data":{"wifi":{}'), loads=2)

# a write after a fallback leaves a valid current file: nothing is passed over any more
P = "rewritten.json"
two_generations(P)
with open(P, "wb") as f:
    f.write(signed(b'"v":1,"gen":3,"data":{"wifi":{}'))
s = Store(P)
s.load()
before = len(s.problems)
s.put("meta", note="rewritten")
print(json.dumps({"case": "rewritten", "before": before, "after": s.problems, "status": s.status}))

# the current "file" cannot be opened at all: a directory in its place
two_generations("dir.json")
os.remove("dir.json")
os.mkdir("dir.json")
report("directory", Store("dir.json"))

# a section load() does not know is dropped, the known ones kept
P = "unknown.json"
with open(P, "wb") as f:
    f.write(signed(b'"v":1,"gen":3,"data":{"meta":{"a":1},"zzz":{"b":2}}}'))
s = Store(P)
print(json.dumps({"case": "unknown-section", "got": s.load(), "status": s.status}))
"""


@pytest.fixture(scope="module")
def cases(mpy_in):
    run = mpy_in("store_parse").run(SCRIPT)
    return {d["case"]: d for d in (json.loads(x) for x in run.lines if x.startswith("{"))}


@pytest.mark.parametrize("case,why", [
    ("not-json", "not JSON"),
    ("gen-negative", "malformed record"),
    ("gen-text", "malformed record"),
    ("data-list", "malformed record"),
    ("section-list", "malformed section"),
    ("separator", "not a store file"),
    ("oversize", "larger than 8192 bytes"),
])
def test_a_checksummed_file_that_is_not_a_record_is_passed_over_for_the_previous(cases, case,
                                                                                   why):
    got = cases[case]
    assert (got["error"], got["status"], got["previous"]) == (None, "previous", True)
    assert got["problems"] == [why]


def test_a_record_of_generation_0_is_loaded(cases):
    got = cases["gen-zero"]
    assert (got["error"], got["status"], got["problems"]) == (None, "ok", [])


def test_a_second_load_reports_only_its_own_problems(cases):
    assert cases["loaded-twice"]["problems"] == ["not JSON"]


def test_a_write_after_a_fallback_clears_the_problems(cases):
    got = cases["rewritten"]
    assert (got["before"], got["after"], got["status"]) == (1, [], "ok")


def test_a_current_file_that_cannot_be_opened_is_passed_over_for_the_previous(cases):
    got = cases["directory"]
    assert (got["error"], got["status"], got["previous"]) == (None, "previous", True)
    assert len(got["problems"]) == 1 and got["problems"][0].startswith("unreadable (")


def test_a_section_load_does_not_know_is_dropped_and_the_rest_kept(cases):
    assert cases["unknown-section"] == {"case": "unknown-section", "got": {"meta": {"a": 1}},
                                        "status": "ok"}
