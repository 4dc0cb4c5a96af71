"""clear() of onboard.store: under a power cut at every write, on LittleFS
and on FAT, a cut clear raises, so the caller never takes cleared secrets for
gone while the previous generation may still hold them; a clear that returns
has left them in no file."""

import pytest
from test_store_powercut import SMALL, sweep


@pytest.mark.parametrize("kind", ["lfs", "fat"])
def test_a_cut_clear_raises_so_the_caller_knows(mpy, kind):
    points, _ = sweep(mpy, kind, SMALL, "clear")
    assert [p["cut"] for p in points if not p["raised"]] == [points[-1]["cut"]]


def test_a_clear_leaves_no_cleared_secret_in_any_file_of_the_flash(mpy, tmp_path):
    # the previous generation still holds the password a put replaced, and
    # the current one the password cleared: after clear() neither is on flash
    flash = tmp_path / "flash"
    flash.mkdir()
    mpy.run(f"""
        from onboard.store import Store
        s = Store({str(flash / "onboard.json")!r})
        s.put("wifi", networks=[{{"ssid": "home", "password": "pw-older-7Qx"}}])
        s.put("wifi", networks=[{{"ssid": "home", "password": "pw-newer-9Zk"}}])
        s.put("meta", note="kept")
        s.clear("wifi")
        """)
    files = {f.name: f.read_bytes() for f in flash.iterdir()}
    assert b"kept" in files["onboard.json"]  # (the clear wrote the next generation)
    assert [name for name, raw in files.items() if b"pw-older" in raw or b"pw-newer" in raw] == []
