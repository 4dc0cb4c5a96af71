"""`make sim` as a test: the whole life of a device, with the exact states."""

import re
import signal
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
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


def test_with_a_serial_line_the_device_of_the_sim_speaks_improv_there(tmp_path):
    from test_improv import until

    from onboard_cli.improv import GET_DEVICE_INFO, RESULT, Serial, parse_strings, rpc

    tty = tmp_path / "tty"
    onboard = str(Path(sys.executable).with_name("onboard"))
    # started as from a terminal, where Ctrl-C reaches it: a background job of a shell
    # without job control (a CI runner's, `make test &`) inherits SIGINT ignored
    run = subprocess.Popen([onboard, "sim", "--profile", "blynk", "--interactive",
                            "--serial", str(tty)], stdout=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in run.stdout:  # pyright: ignore  (a pipe)
            if line.startswith("Open http"):  # in setup mode, waiting for a person
                break
        port = Serial(str(tty))
        try:
            port.send(rpc(GET_DEVICE_INFO))
            data = until(port, RESULT, GET_DEVICE_INFO)[-1][1]
        finally:
            port.close()
        assert parse_strings(data[2:])[3].startswith("Acme Sensor-")
    finally:
        run.send_signal(signal.SIGINT)  # Ctrl-C: the sim stops its device and clouds
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()  # (the sim only: its device and broker may be left running)
            raise


@contextmanager
def until_setup_mode(*args):
    """`onboard sim --interactive ARGS`, read until it names its device's portal
    (the device in setup mode, waiting for a person) or ends; yields (the sim,
    the portal URL or None, its output so far), then stops it as Ctrl-C does."""
    onboard = str(Path(sys.executable).with_name("onboard"))
    run = subprocess.Popen([onboard, "sim", "--interactive", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    out, url = [], None
    try:
        for line in run.stdout:  # pyright: ignore  (a pipe)
            out.append(line)
            if line.startswith("Open http"):
                url = line.split()[1]
                break
        yield run, url, "".join(out)
    finally:
        run.send_signal(signal.SIGINT)  # (none when it has ended)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            raise


# the profile's own fields on the setup page (as test_profile_pages reads them)
INPUTS = re.compile(r'<input name="(\w+)" type="(\w+)" autocomplete="off">')


def test_the_sim_runs_a_device_of_the_profile_it_is_given():
    # its setup page asks for that cloud's fields: AllThingsTalk's device id and token
    with until_setup_mode("--profile", "allthingstalk") as (_, url, out):
        assert url, out
        with urllib.request.urlopen(url, timeout=10) as page:
            fields = dict(INPUTS.findall(page.read().decode()))
    assert fields == {"device_id": "text", "token": "password"}


def test_the_sims_device_loads_the_library_from_the_romfs_image_it_is_given(tmp_path):
    from onboard_cli.romfs import make_image

    # an image of the Spoke Zone product: a device running from it has no Blynk
    # profile to load (ERROR 700 at boot), where build/ has every cloud's
    image = tmp_path / "spokezone.romfs"
    make_image(image, clouds=("spokezone",))
    with until_setup_mode("--profile", "blynk", "--mpy", "--romfs", str(image)) as (
            run, url, out):
        code = None if url else run.wait(60)
    assert (url, code) == (None, 1), out
    assert re.search(r"\bERROR +last_error 700\b", out), out
