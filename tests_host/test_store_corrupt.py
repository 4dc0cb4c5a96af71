"""Damaged store files: load never raises, falls back to the newest valid
generation (or an empty record) and says which through Store.status and the
log."""

import json

import pytest

SCRIPT = r"""
import json, os
from binascii import crc32
from onboard.store import Store, MAX_BYTES

P = "onboard.json"
OLD = {"wifi": {"networks": [{"ssid": "home", "password": "pw-gen-one"}]}}
NEW = {"wifi": {"networks": [{"ssid": "home", "password": "pw-gen-two"}]}}


def reset():
    for f in (P, P + ".prev", P + ".tmp"):
        try:
            os.remove(f)
        except OSError:
            pass


def two_generations():
    reset()
    s = Store(P)
    s.put("wifi", **OLD["wifi"])
    s.put("wifi", **NEW["wifi"])
    with open(P, "rb") as f:
        return f.read()


def write(path, raw):
    with open(path, "wb") as f:
        f.write(raw)


def load():
    s = Store(P)
    try:
        got = s.load()
    except Exception as e:
        return {"raised": repr(e)}
    which = "new" if got == NEW else "old" if got == OLD else "empty" if got == {} else "other"
    return {"got": which, "status": s.status, "problems": [w for _, w in s.problems]}


def record(case, results):
    # One line per distinct outcome with its count keeps the output small.
    seen = {}
    for r in results:
        key = json.dumps(r)
        seen[key] = seen.get(key, 0) + 1
    for key, n in seen.items():
        print('{"case": "%s", "count": %d, "result": %s}' % (case, n, key))


good = two_generations()

results = []
for n in range(len(good)):
    two_generations()
    write(P, good[:n])
    results.append(load())
record("truncated-with-previous", results)

results = []
for n in range(len(good)):
    reset()
    write(P, good[:n])
    results.append(load())
record("truncated-alone", results)

results = []
for i in range(len(good)):
    for bit in range(8):
        two_generations()
        flipped = bytearray(good)
        flipped[i] ^= 1 << bit
        write(P, flipped)
        results.append(load())
record("bit-flips", results)

two_generations()
write(P, b"")
record("empty-file", [load()])

two_generations()
write(P, b"hello, not json at all")
record("not-json", [load()])

two_generations()
rest = ('"v":2,"gen":9,"data":%s}' % json.dumps(NEW)).encode()
write(P, b'{"crc":"%08x",' % (crc32(rest) & 0xFFFFFFFF) + rest)
record("unknown-version", [load()])

two_generations()
write(P, b"{" + b" " * MAX_BYTES + b"}")
record("oversized", [load()])

two_generations()
write(P + ".tmp", b'{"crc":"0000')
record("stray-temp-garbage", [load()])

two_generations()
rest = ('"v":1,"gen":7,"data":%s}' % json.dumps({"wifi": {"x": 1}})).encode()
write(P + ".tmp", b'{"crc":"%08x",' % (crc32(rest) & 0xFFFFFFFF) + rest)
record("stray-temp-complete", [load()])

two_generations()
write(P, good[:40])
write(P + ".prev", b"garbage")
record("both-damaged", [load()])

# Loses nothing: a put after falling back keeps the previous record's data.
two_generations()
write(P, good[:25])
s = Store(P)
s.load()
s.put("enrol", token="0x0000000000000001")
after = Store(P)
rec = after.load()
record("put-after-fallback", [{"status": after.status, "wifi": rec.get("wifi") == OLD["wifi"],
                               "enrol": rec.get("enrol")}])
"""


@pytest.fixture(scope="module")
def cases(mpy_in):
    run = mpy_in("corrupt").run(SCRIPT)
    out = {}
    for line in run.lines:
        if line.startswith("{"):
            doc = json.loads(line)
            out.setdefault(doc["case"], []).extend([doc["result"]] * doc["count"])
    return out


def outcomes(results):
    return {(r.get("got"), r.get("status")) for r in results}


def test_load_never_raises_on_any_damaged_file(cases):
    raised = [r for results in cases.values() for r in results if "raised" in r]
    assert not raised


def test_truncated_at_every_offset_falls_back_to_previous(cases, report):
    results = cases["truncated-with-previous"]
    assert len(results) > 50
    assert outcomes(results) == {("old", "previous")}
    report(f"store: {len(results)} truncation offsets checked")


def test_truncated_with_no_previous_gives_empty_record_flagged_damaged(cases):
    results = cases["truncated-alone"]
    # offset 0 is an empty file, also damaged
    assert outcomes(results) == {("empty", "damaged")}


def test_every_single_bit_flip_is_detected(cases, report):
    results = cases["bit-flips"]
    assert outcomes(results) == {("old", "previous")}
    report(f"store: {len(results)} bit flips checked")


@pytest.mark.parametrize("case", ["empty-file", "not-json", "oversized"])
def test_unreadable_current_file_falls_back(cases, case):
    assert outcomes(cases[case]) == {("old", "previous")}


def test_unknown_schema_version_is_passed_over_and_named(cases):
    (result,) = cases["unknown-version"]
    assert (result["got"], result["status"]) == ("old", "previous")
    assert result["problems"] == ["unknown schema version"]


@pytest.mark.parametrize("case", ["stray-temp-garbage", "stray-temp-complete"])
def test_stray_temp_file_is_ignored(cases, case):
    assert outcomes(cases[case]) == {("new", "ok")}


def test_both_generations_damaged_gives_empty_record(cases):
    (result,) = cases["both-damaged"]
    assert (result["got"], result["status"]) == ("empty", "damaged")
    assert len(result["problems"]) == 2


def test_put_after_fallback_keeps_the_previous_data(cases):
    (result,) = cases["put-after-fallback"]
    assert result == {"status": "ok", "wifi": True, "enrol": {"token": "0x0000000000000001"}}


def test_damage_is_reported_in_the_log(mpy):
    run = mpy.run("""
        from onboard.store import Store
        s = Store("onboard.json"); s.put("state", boots=1); s.put("state", boots=2)
        open("onboard.json", "w").write("torn")
        Store("onboard.json").load()
    """)
    assert "W store: onboard.json passed over: not a store file" in run.lines
    assert "W store: using the previous generation 1" in run.lines
