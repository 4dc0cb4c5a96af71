"""tests_device/ scripts on the Unix port, as `onboard test-device` runs them
on a board: with the same HTTPS servers and parameter files, judged by the
same verdict."""

import argparse
import re
import shutil

import pytest
from conftest import LIB, ROOT
from fakeboard import fake_mpremote, held, written

from onboard_cli import device_tests
from onboard_cli.device_tests import PATH, HTTPSFixture, verdict
from onboard_cli.paths import ToolError

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
    # seen by the servers: one handshake on the first (stranger CA) and two on
    # the second (another name: blocking and on asyncio) went no further
    assert https.wait_refused([1, 2])
    assert [server.refused for server in https.servers] == [1, 2]


def test_https_script_closes_the_connection_of_a_refused_handshake(mpy, https):
    mpy.run(file=HTTPS)
    # the server's own count, asked once the asyncio client had refused it
    assert https.lingered == [0]


def test_https_script_shows_the_device_certificate_in_each_form_to_the_server(mpy, https):
    mpy.run(file=HTTPS)
    # the server's own log: the certificate it verified, once per form
    assert https.presented == [https.device] * len(https.forms)


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


def fake_board(tmp_path, monkeypatch):
    """(board folder, build folder) for `onboard test-device` with a fake mpremote
    (fakeboard) whose board is a folder: the build holds lib/onboard's sources as
    its files."""
    board = tmp_path / "board"
    board.mkdir()
    build = tmp_path / "build"
    shutil.copytree(LIB / "onboard", build / "onboard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(device_tests, "mpremote", lambda: fake_mpremote(board))
    monkeypatch.setattr(device_tests, "BUILD", build)
    return board, build


def run_test_device():
    """One `onboard test-device` run on the fake board."""
    args = argparse.Namespace(port="fake", timeout=120, host="127.0.0.1", wifi_ssid=None,
                              wifi_password="")
    device_tests.main(args)


def test_test_device_copies_what_the_scripts_need_and_every_script_passes(tmp_path, monkeypatch,
                                                                         capsys):
    board, build = fake_board(tmp_path, monkeypatch)
    run_test_device()
    assert capsys.readouterr().out.endswith("all device tests passed\n")
    on_board = held(board)
    assert {p: b for p, b in on_board.items() if p.startswith("onboard/")} == held(build)
    assert {"tinytest.py", "ramblock.py", "test_params.json", "test_ca.pem",
            "test_stranger_ca.pem", "test_id0.crt", "test_id0.key"} <= set(on_board)
    # the device's keys go there, the servers' keys stay here
    assert not {"right.key", "other.key"} & set(on_board)


PASSES_HAVING_ASKED = """
import json
from onboard import http
p = json.load(open("test_params.json"))
{asked}
print("1 passed, 0 failed")
"""


SHOWN_EACH_FORM = """http.get(p["url"], ca=p["ca"])
import tls
from onboard import ca, cloudtls
for cert, key in p["identity"]["files"]:
    ctx = ca.context(p["ca"], False, tls.SSLContext(tls.PROTOCOL_TLS_CLIENT))
    cloudtls.load(ctx, {"cert": cert, "key": key})
    http.get(p["identity"]["url"], ca=ctx)"""


@pytest.mark.parametrize("asked,why", [
    ("", "the HTTPS server saw no request"),
    ('http.get(p["url"], ca=p["ca"])',
     "the HTTPS server was not shown the device's certificate in each form"),
    (SHOWN_EACH_FORM, "the HTTPS server did not see a refused connection closed")],
    ids=["nothing", "verified", "each form"])
def test_test_device_fails_a_https_script_whose_requests_the_server_did_not_see(
        tmp_path, monkeypatch, asked, why):
    # the script's own verdict is not enough: the server's log must show its requests
    _, build = fake_board(tmp_path, monkeypatch)
    scripts = tmp_path / "tests_device"
    scripts.mkdir()
    for helper in device_tests.HELPERS:
        shutil.copy(ROOT / "tests_device" / helper, scripts / helper)
    (scripts / "test_https.py").write_text(PASSES_HAVING_ASKED.format(asked=asked))
    monkeypatch.setattr(device_tests, "TESTS_DEVICE", scripts)
    with pytest.raises(ToolError, match=re.escape(f"test_https.py ({why})")):
        run_test_device()


def test_test_device_copies_only_the_library_files_the_board_lacks_or_holds_otherwise(
        tmp_path, monkeypatch):
    # (its first run copied them all: above)
    board, build = fake_board(tmp_path, monkeypatch)
    run_test_device()
    (board / "onboard" / "store.py").write_text("# an older one\n")
    shutil.rmtree(board / "onboard" / "clouds")
    copied = written(board, run_test_device)
    clouds = [str(f.relative_to(build)) for f in (build / "onboard" / "clouds").glob("*.py")]
    assert [c for c in copied if c.startswith("onboard/")] == sorted(["onboard/store.py", *clouds])
    assert {p: b for p, b in held(board).items() if p.startswith("onboard/")} == held(build)


def test_test_device_copies_the_whole_library_when_the_board_cannot_list_it(tmp_path,
                                                                          monkeypatch):
    # (a firmware without hashlib, say): every file written again, over what is there
    from onboard_cli import boardfs

    board, build = fake_board(tmp_path, monkeypatch)
    run_test_device()
    monkeypatch.setattr(boardfs, "_LISTING", "import hashlib\nhashlib.sha999()\n")
    (board / "onboard" / "store.py").write_text("# an older one\n")
    copied = written(board, run_test_device)
    assert [c for c in copied if c.startswith("onboard/")] == sorted(held(build))
    assert {p: b for p, b in held(board).items() if p.startswith("onboard/")} == held(build)
