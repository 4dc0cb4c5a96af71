"""The harness itself: snippets run under MicroPython, failures show its traceback."""

import pytest

from onboard_cli.simdevice import running_in_group


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


def test_a_stopped_device_leaves_no_process_behind_even_when_its_runner_hangs(device):
    # a runner that cannot pass SIGTERM on is killed after the grace; the device
    # it started must not live on, writing to a folder a caller then removes
    # (onboard fleet's clean-up failed so: "Directory not empty")
    import os
    import signal

    d = device()
    d.wait_state("WAIT_CONFIG")
    os.kill(d.proc.pid, signal.SIGSTOP)
    d.stop(grace=0.5)
    assert running_in_group(d.proc.pid) == []  # none, once stop() has returned


@pytest.mark.device_traceback
def test_a_devices_heapsize_limits_its_heap_without_mpy(device):
    # 12 KB cannot hold lib/'s sources compiled on the device: out of memory
    # before setup mode (the default heap reaches it: the other device tests)
    d = device(heapsize="12K")
    with pytest.raises(AssertionError, match="device exited"):
        d.wait_state("WAIT_CONFIG")
    assert "MemoryError" in d.log_path.read_text()


def test_the_bench_gives_a_life_bisected_several_times_the_heap_every_run_worked_in():
    # (near its smallest heap a life passes in one run and fails in the next)
    from bench.heap import largest

    assert largest([47_104, 47_360, 46_848]) == 47_360
    assert largest([32_512, "> 196,608", 33_280]) == "> 196,608"  # a run that never worked
    assert largest(["<= 16,384", 28_672]) == 28_672


def test_the_bench_reads_setup_modes_heap_only_once_its_counters_stop_moving_and_none_is_open():
    # (read while DNS packets were still being handled, the same run gave
    # 320 and 1,888 B "after minus before", the goal 1,024 B between; a
    # connection still open holds its request until the portal's timeout)
    from bench.setup_mode import settled

    class Server:
        counts = iter(['{"served": 1, "active": 1}', '{"served": 2, "active": 1}',
                       '{"served": 2, "active": 1}', '{"served": 2, "active": 0}',
                       '{"served": 2, "active": 0}', "never asked"])
        asked = 0

        def ask(self, what):
            assert what == "stats"
            self.asked += 1
            return next(self.counts)

    server = Server()
    assert (settled(server), server.asked) == ('{"served": 2, "active": 0}', 5)


def test_the_bench_finds_the_pools_micropython_keeps_its_names_in():
    # each pool twice the last, added when the last is full (on a 32-bit
    # build: 304, 592, 1,152, 2,272, 4,528 B at names 21, 61, 141, 301, 621)
    from bench.heap import last_pool, name_pools

    pools = name_pools()
    assert [at for at, _ in pools[:5]] == [21, 61, 141, 301, 621]
    assert all(1.8 < b / a < 2.2 for (_, a), (_, b) in zip(pools, pools[1:]))
    assert last_pool(518, pools) == (pools[3][1], 301, 218)  # (the Blynk life's names)
    assert last_pool(300, pools)[1:] == (141, 160)
