"""tests_device/ scripts on the Unix port, as `onboard test-device` runs them
on a board: with the same HTTPS servers and parameter files, judged by the
same verdict."""

import argparse
import shutil
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
# `exec` and `run` run the script there on the Unix port, `fs mkdir` and `fs cp`
# write into it, and each file copied is logged in copied.log beside the board.
# Only what the runner copied is on that board's import path (plus the Unix
# board's network).
FAKE_MPREMOTE = r'''#!{python}
import os, shutil, subprocess, sys
board = {board!r}
args = sys.argv[3:]  # after "connect PORT"
if args[0] in ("run", "exec"):
    env = dict(os.environ, MICROPYPATH=".frozen:" + board + ":" + {board_unix!r})
    script = ["-c", args[1]] if args[0] == "exec" else [args[1]]
    proc = subprocess.run([{micropython!r}, *script], cwd=board, env=env)
    sys.exit(proc.returncode)
command = []
for word in args + ["+"]:
    if word != "+":
        command.append(word)
        continue
    if command[1] == "mkdir":
        os.mkdir(os.path.join(board, command[2].lstrip(":")))
        command = []
        continue
    *sources, dst = [w for w in command[2:] if w not in ("-f", "-r")]  # fs cp [-fr] SRC.. :DST
    into = os.path.join(board, dst.lstrip(":"))
    if "-r" in command:  # (one folder, copied into dst: each of its files)
        top = os.path.dirname(sources[0])
        pairs = [(os.path.join(d, n), os.path.join(into, os.path.relpath(d, top), n))
                 for d, _, names in os.walk(sources[0]) for n in names]
    else:
        pairs = [(src, os.path.join(into, os.path.basename(src))
                  if dst.endswith(("/", ":")) else into) for src in sources]
    for src, target in pairs:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(src, target)
        with open(os.path.join(board, "..", "copied.log"), "a") as log:
            log.write(os.path.relpath(target, board) + "\n")
    command = []
'''


def fake_board(tmp_path, monkeypatch):
    """(board folder, build folder) for `onboard test-device` with the fake mpremote:
    the build holds lib/onboard's sources as its files."""
    board = tmp_path / "board"
    board.mkdir()
    build = tmp_path / "build"
    shutil.copytree(LIB / "onboard", build / "onboard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    fake = tmp_path / "mpremote"
    fake.write_text(FAKE_MPREMOTE.format(python=sys.executable, board=str(board),
                                         board_unix=str(ROOT / "boards" / "unix"),
                                         micropython=micropython_binary()))
    fake.chmod(0o755)
    monkeypatch.setattr(device_tests, "mpremote", lambda: [str(fake)])
    monkeypatch.setattr(device_tests, "BUILD", build)
    return board, build


def run_test_device(tmp_path):
    """One `onboard test-device` run on the fake board; the files it copied."""
    log = tmp_path / "copied.log"
    log.unlink(missing_ok=True)
    args = argparse.Namespace(port="fake", timeout=120, host="127.0.0.1", wifi_ssid=None,
                              wifi_password="")
    device_tests.main(args)
    return log.read_text().splitlines()


def test_test_device_copies_what_the_scripts_need_and_every_script_passes(tmp_path, monkeypatch,
                                                                         capsys):
    board, build = fake_board(tmp_path, monkeypatch)
    copied = run_test_device(tmp_path)
    assert capsys.readouterr().out.endswith("all device tests passed\n")
    library = sorted(str(p.relative_to(build)) for p in (build / "onboard").rglob("*.py"))
    assert sorted(c for c in copied if c.startswith("onboard/")) == library
    copied = {p.name for p in board.iterdir()}
    assert {"onboard", "tinytest.py", "ramblock.py", "test_params.json", "test_ca.pem",
            "test_stranger_ca.pem"} <= copied
    assert not any(name.endswith(".key") for name in copied)  # the servers' keys stay here


def test_test_device_copies_only_the_library_files_the_board_lacks_or_holds_otherwise(
        tmp_path, monkeypatch):
    # (its first run copied them all: above)
    board, build = fake_board(tmp_path, monkeypatch)
    run_test_device(tmp_path)
    (board / "onboard" / "store.py").write_text("# an older one\n")
    shutil.rmtree(board / "onboard" / "clouds")
    copied = run_test_device(tmp_path)
    clouds = [str(f.relative_to(build)) for f in (build / "onboard" / "clouds").glob("*.py")]
    assert sorted(c for c in copied if c.startswith("onboard/")) == sorted(
        ["onboard/store.py", *clouds])
    for f in (build / "onboard").rglob("*.py"):  # the board's library is the build's again
        assert (board / f.relative_to(build)).read_bytes() == f.read_bytes()


def test_test_device_copies_the_whole_library_when_the_board_cannot_list_it(tmp_path,
                                                                          monkeypatch):
    # (a firmware without hashlib, say): mpremote's own recursive copy, over what is there
    board, build = fake_board(tmp_path, monkeypatch)
    run_test_device(tmp_path)
    monkeypatch.setattr(device_tests, "_LISTING", "import hashlib\nhashlib.sha999()\n")
    (board / "onboard" / "store.py").write_text("# an older one\n")
    copied = run_test_device(tmp_path)
    library = sorted(str(p.relative_to(build)) for p in (build / "onboard").rglob("*.py"))
    assert sorted(c for c in copied if c.startswith("onboard/")) == library
    assert (board / "onboard" / "store.py").read_bytes() == (
        build / "onboard" / "store.py").read_bytes()
