"""Flash wear: load and unchanged puts write no block; a change replaces the
file exactly once. Blocks are counted on the RAM block device itself."""

import json

import pytest

SCRIPT = r"""
import json, os, ramblock
from onboard.store import Store

KIND = "%s"
dev = ramblock.lfs() if KIND == "lfs" else ramblock.fat()
ramblock.mount(dev, KIND, "/flash")
P = "/flash/onboard.json"
s = Store(P)
s.put("wifi", networks=[{"ssid": "home", "password": "pw-123456"}])
s.put("cloud", device_id="d1", expires_in=3600)


def gen():
    with open(P) as f:
        return json.load(f)["gen"]


def measure(name, fn):
    before_blocks, before_gen = dev.writes, gen()
    store = fn()
    print(json.dumps({"op": name, "blocks": dev.writes - before_blocks,
                      "replacements": store.writes, "gen_step": gen() - before_gen}))


def boot():
    st = Store(P)
    st.load()
    st.get("wifi")
    return st


def same_put():
    st = boot()
    st.put("wifi", networks=[{"ssid": "home", "password": "pw-123456"}])
    st.put("cloud", device_id="d1")
    return st


def change_put():
    st = boot()
    st.put("cloud", expires_in=7200)
    return st


def clear_absent():
    st = boot()
    st.clear("enrol")
    return st


def clear_present():
    st = boot()
    st.clear("cloud")
    return st


def remove_absent_field():
    st = boot()
    st.put("cloud", nothing_here=None)
    return st


for name, fn in (("load", boot), ("same-put", same_put), ("change-put", change_put),
                 ("clear-absent", clear_absent), ("remove-absent-field", remove_absent_field),
                 ("clear-present", clear_present)):
    measure(name, fn)
"""


@pytest.fixture(scope="module", params=["lfs", "fat"])
def ops(request, mpy_in):
    run = mpy_in("writes").run(SCRIPT % request.param)
    return {d["op"]: d for d in map(json.loads, run.lines) if "op" in d}


@pytest.mark.parametrize("op", ["load", "same-put", "clear-absent", "remove-absent-field"])
def test_no_block_is_written_when_nothing_changes(ops, op):
    assert ops[op]["blocks"] == 0
    assert ops[op]["replacements"] == 0


@pytest.mark.parametrize("op", ["change-put", "clear-present"])
def test_a_change_replaces_the_file_exactly_once(ops, op):
    assert ops[op]["replacements"] == 1
    assert ops[op]["gen_step"] == 1
    assert ops[op]["blocks"] > 0
