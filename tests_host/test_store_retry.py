"""A write cut short (the medium failed part-way, at every block write of a
put, on LittleFS and on FAT) leaves the same Store object usable: its next
write reads the flash again and succeeds, and the record loaded afterwards
holds that write."""

import json

import pytest

SCRIPT = r"""
import json, ramblock
from onboard.store import Store

KIND = %r
P = "/flash/onboard.json"


def mount(data=None):
    dev = ramblock.lfs() if KIND == "lfs" else ramblock.fat()
    if data is not None:
        dev = ramblock.RAMBlockDev(dev.block_size, dev.blocks, data)
    ramblock.mount(dev, KIND, "/flash")
    return dev


dev = mount()
s = Store(P)
s.put("wifi", networks=[{"ssid": "home", "password": "pw-old-1"}])
s.put("meta", note="one")
base = bytes(dev.data)
ramblock.umount("/flash")


def change(s):
    s.put("wifi", networks=[{"ssid": "home", "password": "pw-new-2"}])


d = mount(base)
s = Store(P)
s.load()
before = d.writes
change(s)
total = d.writes - before
ramblock.umount("/flash")

for n in range(total):
    d = mount(base)
    s = Store(P)
    s.load()
    d.cut_after(n)
    try:
        change(s)
    except OSError:
        pass
    ramblock.umount("/flash")
    d = mount(d.data)  # the medium works again
    try:
        s.put("meta", note="two")  # the same Store object
        error = None
    except OSError as e:
        error = repr(e)
    got = Store(P).load()
    ramblock.umount("/flash")
    print(json.dumps({"cut": n, "error": error, "meta": got.get("meta")}))
print(json.dumps({"writes": total}))
"""


@pytest.mark.parametrize("kind", ["lfs", "fat"])
def test_after_a_write_cut_short_the_same_store_writes_again(mpy, kind):
    lines = [json.loads(x) for x in mpy.run(SCRIPT % kind).lines if x.startswith("{")]
    points, total = lines[:-1], lines[-1]["writes"]
    assert total > 0, "the put must write to the medium"
    assert [p["cut"] for p in points] == list(range(total))
    assert [p for p in points if (p["error"], p["meta"]) != (None, {"note": "two"})] == []
