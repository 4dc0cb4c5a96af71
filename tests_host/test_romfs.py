"""ROMFS: `onboard romfs` builds an image of onboard's .mpy with mpremote, and
the Unix board runs from it mounted at /rom (boards/unix/rom.py), its bytes
outside the GC heap as a board's flash is."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from onboard_cli import manifest
from onboard_cli.build import module_name
from onboard_cli.device import rom_launch
from onboard_cli.paths import BOARD_UNIX, ROOT, micropython
from onboard_cli.romfs import make_image

# Run after the mount (rom_launch): every onboard module imports, from where,
# and a Store round trip through the image's onboard.store.
CHECK = """
import gc, json, sys
gc.collect()
heap = gc.mem_alloc()
where = {}
for name in NAMES:
    __import__(name)
    where[name] = sys.modules[name].__file__
from onboard.store import Store
Store(FLASH + "/onboard.json").put("state", last_error=7)
back = Store(FLASH + "/onboard.json").load()["state"]["last_error"]
print("@check " + json.dumps({"where": where, "back": back, "heap": heap}))
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("romfs") / "onboard.romfs"
    make_image(path)
    return path


def run_from(image, tmp_path, heapsize="512K", names=None):
    if names is None:
        names = [module_name(t) for t in manifest.modules()]
    script = tmp_path / "check.py"
    script.write_text(f"NAMES = {names!r}\nFLASH = {str(tmp_path)!r}\n" + CHECK)
    # nothing of onboard on the path but the image: /rom, then the board
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", "/rom", str(BOARD_UNIX)]))
    run = subprocess.run([micropython(), "-X", f"heapsize={heapsize}", "-c",
                          rom_launch(image, script)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    for line in run.stdout.splitlines():
        if line.startswith("@check "):
            return json.loads(line[7:])
    raise AssertionError(f"the run from the image failed:\n{run.stdout}{run.stderr}")


def test_every_onboard_module_imports_from_the_mounted_image(image, tmp_path):
    check = run_from(image, tmp_path)
    outside = {name: f for name, f in check["where"].items() if not f.startswith("/rom/onboard/")}
    assert len(check["where"]) == len(manifest.modules()) and not outside


def test_a_store_round_trip_runs_from_the_image(image, tmp_path):
    assert run_from(image, tmp_path)["back"] == 7


def test_the_image_bytes_are_outside_the_heap(image, tmp_path):
    # a heap smaller than the image: the mount, onboard.store and its round trip fit
    size = image.stat().st_size
    check = run_from(image, tmp_path, heapsize=str(size - 1024), names=["onboard.store"])
    assert check["back"] == 7 and check["heap"] < size // 8


HEAP = "import gc\ngc.collect()\nprint('@heap', gc.mem_alloc())\n"


def test_the_mount_lets_go_of_its_own_code_before_main_runs(image, tmp_path):
    # a board's firmware mounts its partition in C: what the mount leaves on
    # the heap is its objects (the mount, the parked thread), less than the
    # code of boards/unix/rom.py, which a run imports here for comparison
    main = tmp_path / "main.py"
    main.write_text(HEAP)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(BOARD_UNIX), "/rom"]))

    def heap(*args):
        run = subprocess.run([micropython(), *args], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=60)
        return int(run.stdout.split("@heap")[-1])

    plain = heap(str(main))
    with_code = heap("-c", "import rom\n" + HEAP)
    mounted = heap("-c", rom_launch(image, main))
    assert mounted - plain < with_code - plain


def test_an_image_built_for_the_unix_board_runs_its_modules_from_rom(tmp_path):
    path = tmp_path / "unix.romfs"
    make_image(path, board="unix")
    # the path `onboard device run --romfs` sets: the board's folder before /rom
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", str(BOARD_UNIX), "/rom"]))
    main = tmp_path / "main.py"
    main.write_text("import board, network, sys\n"
                    "print('@where', board.__file__, network.__file__)\n")
    run = subprocess.run([micropython(), "-c", rom_launch(path, main)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert run.stdout.split() == ["@where", "/rom/board.mpy", "/rom/network.mpy"], run.stderr


def test_a_blynk_life_runs_from_the_image(image):
    run = subprocess.run([sys.executable, "-m", "onboard_cli.main", "sim", "--profile", "blynk",
                          "--mpy", "--romfs", str(image)], capture_output=True, text=True,
                         timeout=180, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "RUNNING -> WAIT_CONFIG" in run.stdout


def test_device_run_names_a_missing_image(tmp_path):
    run = subprocess.run([sys.executable, "-m", "onboard_cli.main", "device", "run",
                          "--flash", str(tmp_path / "f"), "--config",
                          str(ROOT / "firmware" / "config.example.json"), "--radio",
                          str(ROOT / "tests_host" / "radio.example.json"),
                          "--romfs", str(tmp_path / "none.romfs")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "--romfs" in run.stderr and "no such file" in run.stderr


def test_device_run_refuses_a_file_that_is_not_a_romfs_image_in_one_line(tmp_path):
    # (an .mpy given for the image: a module, not a filesystem)
    wrong = tmp_path / "store.mpy"
    wrong.write_bytes(b"M\x06\x00\x1f" + bytes(64))
    run = subprocess.run([sys.executable, "-m", "onboard_cli.main", "device", "run",
                          "--flash", str(tmp_path / "f"), "--config",
                          str(ROOT / "firmware" / "config.example.json"), "--radio",
                          str(ROOT / "tests_host" / "radio.example.json"),
                          "--romfs", str(wrong)],
                         capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout, run.stderr.splitlines()) == (
        1, "", [f"onboard device: --romfs {wrong}: not a ROMFS image"])


# what a board that mounts an image finds in it ------------------------------------------

def onboard_romfs(*args, env=None):
    """`onboard romfs ARGS` (the CLI); fails the test when it fails."""
    onboard = str(Path(sys.executable).with_name("onboard"))
    run = subprocess.run([onboard, "romfs", *args], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


FILES = """
import json, os


def walk(folder):
    for entry in os.ilistdir(folder):
        path = folder + "/" + entry[0]
        if entry[1] == 0x4000:
            yield from walk(path)
        else:
            yield path[len("/rom/"):]


print("@out " + json.dumps(sorted(walk("/rom"))))
"""


def in_image(image, tmp_path, code):
    """What code prints after "@out " run on the Unix port with image
    mounted at /rom (the image, then boards/unix on the path), JSON-decoded."""
    script = tmp_path / "look.py"
    script.write_text(code)
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", "/rom", str(BOARD_UNIX)]))
    run = subprocess.run([micropython(), "-c", rom_launch(image, script)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=60)
    for line in run.stdout.splitlines():
        if line.startswith("@out "):
            return json.loads(line[5:])
    raise AssertionError(f"the run from the image failed:\n{run.stdout}{run.stderr}")


def image_files(image, tmp_path):
    """The files the mounted image holds, as paths under /rom."""
    return set(in_image(image, tmp_path, FILES))


def product(*clouds):
    """The .mpy files of onboard an image of these clouds holds, build stamp included."""
    return {str(Path(m).with_suffix(".mpy")) for m in manifest.modules(*clouds)} \
        | {"onboard/_build.mpy"}


def test_an_images_clock_floor_is_the_build_time_its_build_stamped(tmp_path):
    # the time a build now stamps anyway, given exactly (SOURCE_DATE_EPOCH);
    # an image without the stamp would floor the clock at the unbuilt tree's 1793491200
    stamp = int(time.time())
    image = tmp_path / "blynk.romfs"
    onboard_romfs("--cloud", "blynk", "--output", str(image),
                  env=dict(os.environ, SOURCE_DATE_EPOCH=str(stamp)))
    clock = in_image(image, tmp_path, "import json\nfrom onboard import clock\n"
                     "print('@out ' + json.dumps([clock.__file__, clock.BUILD]))\n")
    assert clock == ["/rom/onboard/clock.mpy", stamp]


@pytest.mark.parametrize("board", ["esp32_generic", "esp32_s3", "esp32_c3"])
def test_an_image_for_an_esp32_board_holds_its_board_module_and_what_that_imports(board, tmp_path):
    # each ESP32 board.py is `from esp32_common import *` and its pins
    image = tmp_path / f"{board}.romfs"
    make_image(image, clouds=("blynk",), board=board)
    assert {"board.mpy", "esp32_common.mpy"} <= image_files(image, tmp_path)


def test_onboard_romfs_board_puts_that_boards_modules_in_the_image(tmp_path):
    image = tmp_path / "blynk.romfs"
    onboard_romfs("--board", "esp32_generic", "--cloud", "blynk", "--output", str(image))
    assert {"board.mpy", "esp32_common.mpy"} <= image_files(image, tmp_path)


def test_an_image_built_over_another_holds_only_what_was_asked_the_second_time(tmp_path):
    # every cloud first, then one product into the same file (lib/ unchanged between)
    image = tmp_path / "onboard.romfs"
    onboard_romfs("--board", "esp32_generic", "--output", str(image))
    onboard_romfs("--board", "esp32_generic", "--cloud", "blynk", "--output", str(image))
    assert image_files(image, tmp_path) == product("blynk") | {"board.mpy", "esp32_common.mpy"}
