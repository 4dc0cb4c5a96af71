"""tests_device/ scripts on the Unix port, as `onboard test-device` runs them
on a board: with the same HTTPS servers and parameter files, judged by the
same verdict."""

from pathlib import Path

import pytest

from onboard_cli.device_tests import PATH, HTTPSFixture, verdict

SCRIPTS = sorted(Path(__file__).resolve().parents[1].glob("tests_device/test_*.py"))
HTTPS = Path(__file__).resolve().parents[1] / "tests_device" / "test_https.py"


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
