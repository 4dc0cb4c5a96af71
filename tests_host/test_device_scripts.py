"""tests_device/ scripts on the Unix port, as `onboard test-device` runs them
on a board: with the same HTTPS servers and parameter files, judged by the
same verdict."""

import argparse
import sys

import pytest
from conftest import LIB, ROOT, micropython_binary

from onboard_cli import device_tests
from onboard_cli.device_tests import PATH, HTTPSFixture, verdict

SCRIPTS = sorted((ROOT / "tests_device").glob("test_*.py"))
HTTPS = ROOT / "tests_device" / "test_https.py"


@pytest.fixture
def https(mpy):
    with HTTPSFixture(mpy.workdir) as fixture:  # writes test_params.json and the CAs there
        yield fixture


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_device_script_passes_on_the_unix_port(mpy, script, https):
    run = mpy.run(file=script, check=False)
    assert verdict(run.stdout) is None, f"{run.stdout}{run.stderr}"
    assert run.returncode == 0


def test_https_script_reaches_the_server_it_verified(mpy, https):
    mpy.run(file=HTTPS)
    # the server's own log: exactly one request got through, the verified one
    assert https.requests == [PATH]


def test_https_script_breaks_off_the_handshakes_it_must_refuse(mpy, https):
    mpy.run(file=HTTPS)
    # seen by the servers: one handshake on each (stranger CA; another name) went no further
    assert https.wait_refused([1, 1])
    assert [server.refused for server in https.servers] == [1, 1]


def test_https_script_without_its_parameters_fails(mpy):
    run = mpy.run(file=HTTPS, check=False)
    assert verdict(run.stdout) == "1 failed"
    assert run.returncode != 0


@pytest.mark.parametrize("output,why", [("3 passed, 0 failed", None),
                                        ("0 passed, 0 failed", "no test ran"),
                                        ("2 passed, 1 failed", "1 failed"),
                                        ("ok   x\n", "no summary line"), ("", "no summary line")])
def test_verdict_needs_a_summary_with_tests_run_and_none_failed(output, why):
    assert verdict(output) == why


# `onboard test-device` itself, against a fake mpremote whose board is a folder:
# `fs cp` copies into it, `run` runs the script there on the Unix port. Only what
# the runner copied is on that board's import path (plus the Unix board's network).
FAKE_MPREMOTE = r'''#!{python}
import os, shutil, subprocess, sys
board = {board!r}
args = sys.argv[3:]  # after "connect PORT"
if args[0] == "run":
    env = dict(os.environ, MICROPYPATH=".frozen:" + board + ":" + {board_unix!r})
    proc = subprocess.run([{micropython!r}, args[1]], cwd=board, env=env)
    sys.exit(proc.returncode)
command = []
for word in args + ["+"]:
    if word != "+":
        command.append(word)
        continue
    *_, src, dst = command  # fs cp [-r] SRC :DST
    target = os.path.join(board, dst.lstrip(":") or os.path.basename(src))
    if os.path.isdir(src):
        target = os.path.join(board, dst.lstrip(":"), os.path.basename(src))
        shutil.copytree(src, target)
    else:
        shutil.copy(src, target)
    command = []
'''


def test_test_device_copies_what_the_scripts_need_and_every_script_passes(tmp_path, monkeypatch,
                                                                         capsys):
    board = tmp_path / "board"
    board.mkdir()
    build = tmp_path / "build"  # the sources stand in for build/'s .mpy files
    build.mkdir()
    (build / "onboard").symlink_to(LIB / "onboard", target_is_directory=True)
    fake = tmp_path / "mpremote"
    fake.write_text(FAKE_MPREMOTE.format(python=sys.executable, board=str(board),
                                         board_unix=str(ROOT / "boards" / "unix"),
                                         micropython=micropython_binary()))
    fake.chmod(0o755)
    monkeypatch.setattr(device_tests, "mpremote", lambda: [str(fake)])
    monkeypatch.setattr(device_tests, "BUILD", build)
    args = argparse.Namespace(port="fake", timeout=120, host="127.0.0.1", wifi_ssid=None,
                              wifi_password="")
    device_tests.main(args)
    assert capsys.readouterr().out.endswith("all device tests passed\n")
    copied = {p.name for p in board.iterdir()}
    assert {"onboard", "tinytest.py", "ramblock.py", "test_params.json", "test_ca.pem",
            "test_stranger_ca.pem"} <= copied
    assert not any(name.endswith(".key") for name in copied)  # the servers' keys stay here
