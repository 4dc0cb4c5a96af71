"""`onboard build`: every module compiled from lib/ as it is now, and a module
that does not compile stops the build, naming it."""

import os
import shutil
import subprocess

import pytest
from conftest import LIB, micropython_binary

from onboard_cli import build as onboard_build
from onboard_cli.paths import ToolError


@pytest.fixture
def lib(tmp_path, monkeypatch):
    """A copy of lib/ that onboard_build.build compiles from."""
    copy = tmp_path / "lib"
    shutil.copytree(LIB, copy)
    monkeypatch.setattr(onboard_build, "LIB", copy)
    return copy


def run_built(out, code):
    """What code prints under the Unix port, importing only from out (.mpy)."""
    env = dict(os.environ, MICROPYPATH=str(out))
    proc = subprocess.run([micropython_binary(), "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    return proc.stdout.strip() + proc.stderr.strip()


def test_a_module_changed_since_the_last_build_is_compiled_again(lib, tmp_path):
    out = tmp_path / "build"
    onboard_build.build(out)
    codes = lib / "onboard" / "codes.py"
    codes.write_text(codes.read_text() + "\nCHANGED = 'since the first build'\n")
    onboard_build.build(out)
    assert run_built(out, "from onboard.codes import CHANGED; print(CHANGED)") == (
        "since the first build")


def test_a_module_that_does_not_compile_stops_the_build_naming_it(lib, tmp_path):
    (lib / "onboard" / "codes.py").write_text("def broken(:\n")
    with pytest.raises(ToolError, match=r"^mpy-cross failed on onboard/codes\.py: "):
        onboard_build.build(tmp_path / "build")
