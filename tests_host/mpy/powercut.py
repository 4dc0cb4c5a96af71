# MicroPython side of the power-cut sweep (tests_host/test_store_powercut.py).
# For every cut point N from 0 to the number of block writes an operation
# makes, the operation runs on a fresh copy of the same flash image with the
# power cut after N writes; the flash is then remounted and loaded.
import json

import ramblock

from onboard.store import Store

WHERE = "/flash"
PATH = WHERE + "/onboard.json"


def _fresh(kind):
    if kind == "lfs":
        return ramblock.lfs()
    if kind == "lfs4k":  # the ESP32's flash geometry: 4 KB erase blocks
        return ramblock.lfs(blocks=16, block_size=4096)
    return ramblock.fat()


def _fs(kind):
    return "fat" if kind == "fat" else "lfs"


def _reopen(dev, kind):
    # A new device object over the same bytes: nothing cached survives a cut.
    d = ramblock.RAMBlockDev(dev.block_size, dev.blocks, dev.data)
    ramblock.mount(d, _fs(kind), WHERE)
    return d


def damaged(prepare):
    """prepare, then the current file cut to half its length (a torn write
    or a worn block): the store loads its previous generation."""
    def run(s):
        prepare(s)
        with open(PATH, "rb") as f:
            data = f.read()
        with open(PATH, "wb") as f:
            f.write(data[: len(data) // 2])
    return run


def sweep(kind, prepare, operation):
    """Print one JSON line per cut point and a final summary line."""
    dev = _fresh(kind)
    ramblock.mount(dev, _fs(kind), WHERE)
    prepare(Store(PATH))
    ramblock.umount(WHERE)

    d = _reopen(dev, kind)
    s = Store(PATH)
    old = s.load()
    before = d.writes
    operation(s)
    total = d.writes - before
    ramblock.umount(WHERE)
    d = _reopen(d, kind)
    new = Store(PATH).load()
    ramblock.umount(WHERE)

    for n in range(total + 1):
        d = _reopen(dev, kind)
        s = Store(PATH)
        s.load()
        d.cut_after(n)
        raised = False
        try:
            operation(s)
        except OSError:
            raised = True
        ramblock.umount(WHERE)
        after = _reopen(d, kind)
        after.restore_power()
        r = Store(PATH)
        got = r.load()
        ramblock.umount(WHERE)
        which = "old" if got == old else ("new" if got == new else "other")
        print(json.dumps({"cut": n, "got": which, "raised": raised, "status": r.status}))
    print(json.dumps({"writes": total, "old": old != new}))
