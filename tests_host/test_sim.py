"""`make sim` as a test: the whole life of a device, with the exact states."""

import subprocess
import sys
from pathlib import Path

import pytest

LIFE = ("WAIT_CONFIG -> CONFIGURING -> CONNECTING_NET -> CONNECTING_CLOUD -> RUNNING -> "
        "WAIT_CONFIG -> CONFIGURING -> CONNECTING_NET -> CONNECTING_CLOUD -> RUNNING")


def sim(profile):
    onboard = str(Path(sys.executable).with_name("onboard"))
    run = subprocess.run([onboard, "sim", "--profile", profile], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.mark.parametrize("profile", ["blynk", "spokezone", "allthingstalk", "plgd"])
def test_whole_life_goes_through_setup_online_reconfigure_and_back(profile):
    out = sim(profile)
    states = next(line for line in out.splitlines() if line.strip().startswith("states"))
    assert states.split(None, 1)[1] == LIFE
    if profile in ("spokezone", "plgd"):  # their tokens expire
        renewal = out.index("renewed True", out.index("wait for the token renewal"))
        assert "online True" in out[renewal:]
