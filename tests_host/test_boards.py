"""boards/: what a board's board.py does with its pins, on the Unix port with
stand-ins for what only a board has (machine.Pin, the firmware's neopixel)."""

import pytest
from conftest import ROOT

FAKES = """
import sys
sys.path[:0] = [BOARD, BOARDS]  # ahead of the Unix board on MICROPYPATH
seen = []

class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, n, mode=None, pull=None):
        self.n = n

    def value(self, v=None):
        seen.append(("level", self.n, v))

class NeoPixel:
    def __init__(self, pin, n):
        self.pin = pin
        self.colours = [(0, 0, 0)] * n

    def __setitem__(self, i, colour):
        self.colours[i] = colour

    def write(self):
        seen.append(("rgb", self.pin.n, self.colours[0]))

class Module:
    pass

machine, neopixel, network = Module(), Module(), Module()
machine.Pin = Pin
neopixel.NeoPixel = NeoPixel
sys.modules.update(machine=machine, neopixel=neopixel, network=network)

import board
board.led(True)
board.led(False)
print(seen)
"""


def leds(mpy, name):
    """What board.led(True) then board.led(False) did on board name's pins."""
    paths = "BOARD, BOARDS = %r, %r\n" % (str(ROOT / "boards" / name), str(ROOT / "boards"))
    return eval(mpy.run(paths + FAKES).stdout)


@pytest.mark.parametrize("name,pin", [("esp32_c3", 8), ("esp32_s3", 48)])
def test_the_devkits_rgb_led_is_lit_and_put_out_through_neopixel(mpy, name, pin):
    # a WS2812 stays dark at a steady high on its data pin
    seen = leds(mpy, name)
    (kind, at, on), off = seen
    assert (kind, at) == ("rgb", pin) and max(on) > 0
    assert off == ("rgb", pin, (0, 0, 0))


def test_a_plain_led_is_driven_high_and_low(mpy):
    assert leds(mpy, "esp32_generic") == [("level", 2, 1), ("level", 2, 0)]
