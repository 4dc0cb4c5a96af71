"""onboard mutate: the mutants it makes of a toy module, and how it judges them."""

import subprocess
import sys
from pathlib import Path

import pytest

from onboard_cli import mutate
from onboard_cli.paths import ToolError

TOY = '''\
"""A toy module."""
from micropython import const

_LIMIT = const(5)


def count(n):
    """Counts up to n."""
    i = 0
    while i < n:
        i += 1
    return i


def check(items, key, flag=True):
    log.info(_TAG, "checking %d", 7)
    if not items or key in items:
        return max(len(items), _LIMIT)
    if flag:
        items.append(key)
    return None
'''


def changes(source=TOY):
    return {(m.op, m.change) for m in mutate.generate("toy", "lib/toy.py", source)}


def test_comparisons_are_flipped():
    found = changes()
    assert ("compare", "i < n -> i <= n") in found
    assert ("compare", "key in items -> key not in items") in found


def test_booleans_not_and_or_and_conditions_are_flipped():
    found = changes()
    assert ("boolean", "flag=True -> flag=False") in found or \
        ("boolean", "True -> False") in found
    assert ("not", "not items -> (items)") in found
    assert ("andor", "not items or key in items -> not items and key in items") in found
    assert ("negate", "flag -> not (flag)") in found


def test_numbers_change_by_one_and_zero_one_swap():
    found = changes()
    assert ("number", "i = 0 -> i = 1") in found
    assert ("number", "i += 1 -> i += 0") in found
    assert ("number", "_LIMIT = const(5) -> _LIMIT = const(6)") in found


def test_statements_are_dropped_and_functions_return_early():
    found = changes()
    assert ("drop", "i += 1 -> pass") in found
    assert ("drop", "items.append(key) -> pass") in found
    assert ("return", "return i -> return None") in found
    assert ("minmax", "max(len(items), _LIMIT) -> _LIMIT") in found
    assert ("minmax", "max(len(items), _LIMIT) -> len(items)") in found
    early = [m for m in mutate.generate("toy", "lib/toy.py", TOY)
             if m.op == "return" and m.where == "count" and m.after == "return at once"]
    assert len(early) == 1
    assert "\n    return; i = 0\n" in early[0].apply()


def test_docstrings_log_calls_const_names_and_module_statements_are_left_alone():
    mutants = mutate.generate("toy", "lib/toy.py", TOY)
    text = "\n".join(m.change for m in mutants)
    assert "toy module" not in text and "Counts up" not in text
    assert "log.info" not in text and "7 ->" not in text
    assert not [m for m in mutants if m.op == "drop" and "_LIMIT" in m.before]
    assert not [m for m in mutants if m.op == "drop" and m.where == ""]


def test_every_mutant_compiles_and_changes_the_source():
    for m in mutate.generate("toy", "lib/toy.py", TOY):
        out = m.apply()
        assert out != TOY, m.id
        compile(out, "toy.py", "exec")


def test_positions_hold_after_non_ascii_text_and_odd_line_breaks():
    source = 'def f(a):\n    s = "é\x0c\u2028"  # ü\n    if a < 2:\n        g(a)\n'
    found = {m.change: m.apply() for m in mutate.generate("toy", "lib/toy.py", source)}
    assert found["a < 2 -> a <= 2"] == source.replace("a < 2", "a <= 2")
    assert found["g(a) -> pass"] == source.replace("g(a)", "pass")


def test_ids_stay_the_same_when_other_code_moves():
    before = {m.id: m.line for m in mutate.generate("toy", "lib/toy.py", TOY)}
    moved = TOY.replace("def count(n):", "def other():\n    pass\n\n\ndef count(n):")
    after = {m.id: m.line for m in mutate.generate("toy", "lib/toy.py", moved)}
    assert set(before) <= set(after)
    assert after["lib/toy.py:count:drop: i += 1 -> pass"] == \
        before["lib/toy.py:count:drop: i += 1 -> pass"] + 4


def test_the_same_change_twice_in_a_function_gets_two_ids():
    source = "def f(a):\n    g(a)\n    g(a)\n"
    ids = [m.id for m in mutate.generate("toy", "lib/toy.py", source) if m.op == "drop"]
    assert ids == ["lib/toy.py:f:drop: g(a) -> pass", "lib/toy.py:f:drop: g(a) -> pass #2"]


def test_a_skip_picks_the_next_mutants_of_the_same_order_and_none_again():
    # --max 3 then --max 3 --skip 3: six different mutants, the six of --max 6
    mutants = mutate.generate("toy", "lib/toy.py", TOY)
    assert len(mutants) > 6
    first, second = (mutate._stable_pick(mutants, 3, skip) for skip in (0, 3))
    ids = [m.id for m in first + second]
    assert len(ids) == len(set(ids)) == 6
    assert set(ids) == {m.id for m in mutate._stable_pick(mutants, 6)}


@pytest.mark.parametrize("option", ["--max", "--skip"])
def test_a_negative_count_is_refused_naming_its_option(option):
    onboard = str(Path(sys.executable).with_name("onboard"))
    run = subprocess.run([onboard, "mutate", "--module", "hex64", option, "-1", "--list"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and run.stdout == ""
    assert f"argument {option}: '-1': a whole number, 0 or more" in run.stderr


def test_equivalent_file_needs_a_reason_on_every_line(tmp_path):
    good = tmp_path / "equivalent.txt"
    good.write_text("# comment\nlib/toy.py:count:number: i = 0 -> i = 1 => i starts below n\n")
    assert mutate.read_equivalent(good) == {
        "lib/toy.py:count:number: i = 0 -> i = 1": "i starts below n"}
    bad = tmp_path / "bad.txt"
    bad.write_text("lib/toy.py:count:number: i = 0 -> i = 1\n")
    with pytest.raises(ToolError, match="bad.txt:1"):
        mutate.read_equivalent(bad)


def test_these_tests_of_the_tool_cover_no_module_of_lib():
    assert not [m for m, tests in mutate.test_map().items() if "tests_host/test_mutate.py" in tests]


def test_tests_cover_what_they_name_what_that_imports_and_devices_cover_all(tmp_path):
    lib, tests = tmp_path / "lib", tmp_path / "tests"
    (lib / "onboard").mkdir(parents=True)
    tests.mkdir()
    (lib / "onboard" / "a.py").write_text("from onboard import b\n")
    (lib / "onboard" / "b.py").write_text("X = 1\n")
    (lib / "onboard" / "c.py").write_text("Y = 2\n")
    (tests / "test_a.py").write_text('RUN = "from onboard.a import thing"\n')
    (tests / "test_c.py").write_text('RUN = "import onboard.c"\n')
    (tests / "test_dev.py").write_text("def test_x(device):\n    device(config=1)\n")
    (tests / "test_none.py").write_text("def test_y():\n    pass\n")
    found = {m: [t.rsplit("/", 1)[-1] for t in ts] for m, ts in
             mutate.test_map(lib, tests, tmp_path / "none.json").items()}
    assert found == {"a": ["test_a.py", "test_dev.py"], "b": ["test_a.py", "test_dev.py"],
                     "c": ["test_c.py", "test_dev.py"]}


TOY_TEST = '''\
import os
import sys

import pytest

sys.path.insert(0, os.environ["ONBOARD_LIB"])
from toy import count


@pytest.mark.parametrize("n", ["2 - 1 ]"])
def test_count_to(n):
    assert count(eval(n.rstrip(" ]"))) == 1


def test_count_to_three():
    assert count(3) == 3
'''

COUNT = '''\
def count(n):
    i = 0
    while i < n:
        i += 1
    return i
'''


FLAKY_TEST = '''
from pathlib import Path


def test_fails_the_first_time_only():
    marker = Path(os.environ["ONBOARD_LIB"]).parent / "ran"
    if not marker.exists():
        marker.write_text("")
        raise AssertionError("flaky")
'''


@pytest.fixture
def toy_lib(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "toy.py").write_text(COUNT)
    (tmp_path / "test_toy.py").write_text(TOY_TEST)
    (tmp_path / "test_flaky.py").write_text(TOY_TEST + FLAKY_TEST)
    return lib


def judge(lib, mutants, timeout, test="test_toy.py", confirm=False):
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
               "-p", "onboard_cli.mutate", "--rootdir", str(lib.parent)]
    return mutate.run_mutants(mutants, {"toy": lib / "toy.py"}, {"toy": [test]},
                              timeout=timeout, command=command, progress=lambda line: None,
                              lib=lib, confirm=confirm, cwd=lib.parent)


def test_mutants_are_killed_or_survive_by_the_tests_against_a_copy(toy_lib):
    lib = toy_lib
    chosen = ("i < n -> i <= n", "return i -> return None", "i = 0 -> i = 1")
    mutants = [m for m in mutate.generate("toy", "lib/toy.py", COUNT) if m.change in chosen]
    assert len(mutants) == 3
    results = judge(lib, mutants, timeout=300)
    status = {m.change: results[m.id]["status"] for m in mutants}
    assert status["i < n -> i <= n"] == "killed"
    assert status["return i -> return None"] == "killed"
    assert status["i = 0 -> i = 1"] == "survived"  # count(3) is 3 from 1 as well
    killer = next(m for m in mutants if m.change == "i < n -> i <= n")
    # the whole id, though the parameter has " - " and "]" in it, as pytest's summary does
    assert results[killer.id]["killed_by"] == "test_toy.py::test_count_to[2 - 1 ]]"
    assert (lib / "toy.py").read_text() == COUNT  # the original is never written


def test_an_edit_of_the_module_while_mutants_run_moves_none_of_them(toy_lib):
    # the mutants were made from COUNT; lib/ is edited before they run
    chosen = ("i < n -> i <= n", "i = 0 -> i = 1")
    mutants = [m for m in mutate.generate("toy", "lib/toy.py", COUNT) if m.change in chosen]
    edited = "# a comment, and a blank line, put in meanwhile\n\n" + COUNT
    (toy_lib / "toy.py").write_text(edited)
    results = judge(toy_lib, mutants, timeout=300)
    assert {m.change: results[m.id]["status"] for m in mutants} == {
        "i < n -> i <= n": "killed", "i = 0 -> i = 1": "survived"}
    assert (toy_lib / "toy.py").read_text() == edited


def test_the_killing_test_is_read_whole_from_the_summary():
    out = ("....\n=== short test summary info ===\n"
           'ERROR tests_host/test_hex64.py::test_ok["0x1A 2B"] - Failed: MicroPython exited\n')
    assert mutate.first_failure(out) == 'tests_host/test_hex64.py::test_ok["0x1A 2B"]'
    assert mutate.first_failure("FAILED t.py::test_x\n") == "t.py::test_x"
    assert mutate.first_failure("1 passed\n") == ""


def test_a_mutant_that_hangs_is_timed_out_not_killed(toy_lib):
    lib = toy_lib
    hang = [m for m in mutate.generate("toy", "lib/toy.py", COUNT)
            if m.change == "i += 1 -> pass"]
    results = judge(lib, hang, timeout=2)
    assert results[hang[0].id]["status"] == "timed out"


def test_a_kill_by_a_test_that_fails_once_only_is_unconfirmed(toy_lib):
    chosen = ("i < n -> i <= n", "i = 0 -> i = 1")
    mutants = [m for m in mutate.generate("toy", "lib/toy.py", COUNT) if m.change in chosen]
    results = judge(toy_lib, mutants, 300, test="test_flaky.py", confirm=True)
    status = {m.change: (results[m.id]["status"], results[m.id]["killed_by"]) for m in mutants}
    assert status["i < n -> i <= n"] == ("killed", "test_flaky.py::test_count_to[2 - 1 ]]")
    assert status["i = 0 -> i = 1"] == (
        "unconfirmed", "test_flaky.py::test_fails_the_first_time_only")


SPAWNER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_a_timed_out_run_is_stopped_with_what_it_started_in_a_session_of_its_own():
    proc = subprocess.Popen([sys.executable, "-c", SPAWNER], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = int(proc.stdout.readline())
    assert not _gone(child)
    mutate._kill_tree(proc)
    assert proc.poll() is not None
    assert _gone(child)


def test_summary_lists_survivors_with_file_line_and_change_and_accepted_ones_apart():
    mutants = mutate.generate("toy", "lib/toy.py", COUNT)
    results = {m.id: {"status": "killed", "killed_by": ""} for m in mutants}
    survivor, accepted = mutants[0], mutants[1]
    results[survivor.id]["status"] = results[accepted.id]["status"] = "survived"
    lines, counts = mutate.summary("toy", mutants, results, {accepted.id: "cannot matter"},
                                   {"mutants": {survivor.id: {"status": "killed"}}})
    text = "\n".join(lines)
    assert counts["survived"] == 1 and counts["equivalent"] == 1
    assert f"lib/toy.py:{survivor.line}  {survivor.op}: {survivor.change}" in text
    assert "cannot matter" in text
    assert f"new survivor  lib/toy.py:{survivor.line}" in text


def test_only_a_confirmed_kill_of_a_former_survivor_is_newly_killed():
    mutants = mutate.generate("toy", "lib/toy.py", COUNT)[:2]
    now = {mutants[0].id: {"status": "killed", "killed_by": "t"},
           mutants[1].id: {"status": "unconfirmed", "killed_by": "t"}}
    was = {"mutants": {m.id: {"status": "survived"} for m in mutants}}
    text = "\n".join(mutate.summary("toy", mutants, now, {}, was)[0])
    assert "1 newly killed" in text
    assert f"newly killed  lib/toy.py:{mutants[0].line}  {mutants[0].change}" in text
    assert mutants[1].change not in text.split("newly killed")[-1]


def test_the_three_named_mutants_are_found_in_lib():
    found = mutate.named_mutants(mutate.modules())
    assert [(title, len(ms)) for title, _, ms in found] == [(t, 1) for t, *_ in mutate.NAMED]


def test_every_accepted_equivalent_names_a_mutant_lib_still_has():
    # one that names none (its code moved or went) would accept nothing, and
    # read as if a judged survivor were still covered
    from onboard_cli.paths import ROOT

    known = set()
    for module, path in mutate.modules().items():
        for m in mutate.generate(module, str(path.relative_to(ROOT)), path.read_text()):
            known.update((m.id, f"{m.path}:{m.line}:{m.change}"))
    stale = [key for key in mutate.read_equivalent() if key not in known]
    assert not stale, "stale lines in tools/mutate/equivalent.txt:\n" + "\n".join(stale)
