"""Power cut at every write of put (one section or several, and the first
after the store fell back to its previous generation), clear and a
first-ever save, on LittleFS and on FAT: after remounting, load returns the
complete old record or the complete new one, never anything else."""

import json

import pytest

SMALL = """
def prepare(s):
    s.put("wifi", networks=[{"ssid": "home", "password": "old-pass-123"}])
    s.put("enrol", plan_id="0x00000000000000aa", token="0x0000000000000001")

def change(s):
    s.put("wifi", networks=[{"ssid": "home", "password": "new-pass-456"}])
"""

# A record of several blocks: 8 networks and two long tokens.
LARGE = """
NETS = [{"ssid": "net-%d-" % i + "s" * 20, "password": "p" * 63} for i in range(8)]

def prepare(s):
    s.put("wifi", networks=NETS)
    s.put("cloud", access_token="a" * 1200, refresh_token="r" * 900, expires_in=3600)

def change(s):
    s.put("cloud", access_token="b" * 1300, refresh_token="q" * 800, expires_in=3600)
"""

OPERATIONS = {
    "put": "prepare, change",
    "clear": "prepare, lambda s: s.clear()",
    "first-save": "lambda s: None, change",
    # several sections in one put: all old or all new, never some of each
    "put-several": "prepare, lambda s: s.put({'wifi': {'networks': []}, "
              "'enrol': {'token': '0x0000000000000002'}})",
    # the first write after the store fell back to its previous generation:
    # the damaged file must not take the place of the only good copy
    "put-after-fallback": "powercut.damaged(prepare), change",
}


def sweep(mpy, kind, record, operation):
    code = record + f"\nimport powercut\npowercut.sweep({kind!r}, {OPERATIONS[operation]})\n"
    lines = [json.loads(line) for line in mpy.run(code).lines if line.startswith("{")]
    return lines[:-1], lines[-1]


@pytest.mark.parametrize("record", ["SMALL", "LARGE"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("kind", ["lfs", "lfs4k", "fat"])
def test_power_cut_at_every_write_leaves_old_or_new_record(mpy, report, kind, operation, record):
    points, summary = sweep(mpy, kind, globals()[record], operation)
    assert summary["old"], "the operation must change the record"
    assert [p["cut"] for p in points] == list(range(summary["writes"] + 1))
    bad = [p for p in points if p["got"] not in ("old", "new")]
    assert not bad, f"cut points that lost the record: {bad}"
    assert points[-1]["got"] == "new"
    if operation == "put-after-fallback":
        assert points[0]["status"] == "previous", points[0]  # (fell back before the put)
    report(f"power cut {kind:5} {operation:10} {record:5}: {len(points)} cut points checked")


@pytest.mark.parametrize("kind", ["lfs", "fat"])
def test_a_cut_operation_raises_so_the_caller_knows(mpy, kind):
    points, _ = sweep(mpy, kind, SMALL, "put")
    assert all(p["raised"] for p in points[:-1])
    assert not points[-1]["raised"]


@pytest.mark.parametrize("kind", ["lfs", "fat"])
def test_previous_generation_is_what_some_cut_points_recover(mpy, kind):
    # Between the two renames of a put only <path>.prev holds a valid record.
    points, _ = sweep(mpy, kind, SMALL, "put")
    recovered = [p for p in points if p["status"] == "previous"]
    assert recovered
    assert all(p["got"] == "old" for p in recovered)
