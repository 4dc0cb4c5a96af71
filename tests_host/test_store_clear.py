"""clear() of onboard.store under a power cut at every write, on LittleFS and
on FAT: a cut clear raises, so the caller never takes cleared secrets for
gone while the previous generation may still hold them."""

import pytest
from test_store_powercut import SMALL, sweep


@pytest.mark.parametrize("kind", ["lfs", "fat"])
def test_a_cut_clear_raises_so_the_caller_knows(mpy, kind):
    points, _ = sweep(mpy, kind, SMALL, "clear")
    assert [p["cut"] for p in points if not p["raised"]] == [points[-1]["cut"]]
