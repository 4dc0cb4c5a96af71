# The simulated button's presses (boards/unix/board.py's button() loads this
# once a test writes "press <ms> <n>" to $ONBOARD_BUTTON): each new text is
# one press of <ms>, timed by the device from its first read. The first
# three reads that find a press released are told in $ONBOARD_BUTTON.ups
# ("<press> <reads>"), as a probe on the line would see them, so that a
# test knows the device has seen the release.
import os
import time

_press = {"key": None, "at": 0, "ms": 0, "ups": 0}


def pressed(path, text):
    """Whether the press that text names is still down, read now."""
    if text != _press["key"]:
        _press.update(key=text, at=time.ticks_ms(), ms=int(text.split()[1]), ups=0)
    if time.ticks_diff(time.ticks_ms(), _press["at"]) < _press["ms"]:
        return True
    if _press["ups"] < 3:
        _press["ups"] += 1
        with open(path + ".upt", "w") as f:  # (then renamed: read whole or not at all)
            f.write("%s %d" % (text, _press["ups"]))
        os.rename(path + ".upt", path + ".ups")
    return False
