"""The harness itself: snippets run under MicroPython, failures show its traceback."""

import pytest


def test_snippet_runs_under_micropython_and_returns_its_output(mpy):
    run = mpy.run("import sys\nprint(sys.implementation.name, 6 * 7)")
    assert run.stdout.strip() == "micropython 42"


def test_lib_and_board_folders_are_importable(mpy):
    run = mpy.run("import onboard.store, onboard.hex64\nprint(onboard.store.__name__)")
    assert run.stdout.strip() == "onboard.store"


def test_failure_shows_the_micropython_traceback(mpy):
    with pytest.raises(pytest.fail.Exception) as failed:
        mpy.run("def boom():\n    return 1 // 0\nboom()\n")
    message = str(failed.value)
    assert "ZeroDivisionError" in message
    assert "in boom" in message
