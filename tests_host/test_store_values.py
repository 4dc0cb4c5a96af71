"""What put() takes and gives back, read through a fresh Store on the Unix
port: finite floats, values nested up to four levels (five, or an object
with a key that is not a string, are refused naming the field), and clear()
when the previous generation is already gone; put() keeps a copy and get()
and load() give copies; unknown sections are refused; several sections put
at once, checked whole before one write; its repr. Each case prints what the
store holds afterwards."""

import json

import pytest

SCRIPT = r"""
import json, os
from onboard.store import Store

def attempt(case, section, **fields):
    P = case + ".json"  # a flash of its own
    s = Store(P)
    try:
        changed, error = s.put(section, **fields), None
    except ValueError as e:
        changed, error = None, str(e)
    back = Store(P)
    print(json.dumps({"case": case, "changed": changed, "error": error,
                      "stored": back.load().get(section), "status": back.status}))


attempt("float", "state", reading=21.5)
attempt("negative-float", "state", reading=-0.25)
attempt("depth-4-list", "state", deep=[[[[1]]]])
attempt("depth-5-list", "state", deep=[[[[[1]]]]])
attempt("depth-4-dict", "state", deep={"a": {"b": {"c": {"d": 1}}}})
attempt("depth-5-dict", "state", deep={"a": {"b": {"c": {"d": {"e": 1}}}}})
attempt("number-key", "state", deep={"a": 1, 2: "b"})

# put() keeps a copy of what it was given, get() and load() hand out copies:
# changing those afterwards changes nothing in the store
given = [{"ssid": "home", "password": "pw-copy-1"}]
s = Store("copies.json")
s.put("wifi", networks=given)
given[0]["ssid"] = "changed"
given.append({"ssid": "more"})
views = [s.get("wifi")]
out = s.get("wifi")
out["networks"][0]["ssid"] = "changed"
out["networks"].append({"ssid": "more"})
views.append(s.get("wifi"))
rec = s.load()
rec["wifi"]["networks"][0]["ssid"] = "changed"
rec["wifi"]["networks"].append({"ssid": "more"})
views.append(s.get("wifi"))
print(json.dumps({"case": "copies", "views": views,
                  "same-put": s.put("wifi", networks=[{"ssid": "home", "password": "pw-copy-1"}]),
                  "writes": s.writes}))

# a tuple is stored as the list JSON makes of it, in memory as on flash
s = Store("tuple.json")
s.put("state", pair=(1, 2))
print(json.dumps({"case": "tuple", "type": type(s.get("state")["pair"]).__name__,
                  "same-put": s.put("state", pair=[1, 2]), "writes": s.writes}))

# put() and clear() on a Store not loaded yet (a fresh boot) work on what the flash holds
Store("boot.json").put("wifi", networks=[{"ssid": "home", "password": "pw-boot-1"}])
Store("boot.json").put("cloud", token="t-1")
print(json.dumps({"case": "put-before-load", "stored": Store("boot.json").load()}))
absent = Store("boot.json").clear("enrol")
cleared = Store("boot.json").clear("wifi")
print(json.dumps({"case": "clear-before-load", "cleared": cleared, "absent": absent,
                  "stored": Store("boot.json").load()}))

# removing a section's last field removes the section from the flash
s = Store("last.json")
s.put("cloud", token="t-2")
s.put("meta", note="kept")
s.put("cloud", token=None)
print(json.dumps({"case": "last-field", "stored": Store("last.json").load()}))

# a section name that is not one of the record's
s = Store("sections.json")
for op, fn in (("get", lambda: s.get("secrets")), ("put", lambda: s.put("secrets", a=1)),
               ("clear", lambda: s.clear("wifi", "secrets"))):
    try:
        fn()
        error = None
    except ValueError as e:
        error = str(e)
    print(json.dumps({"case": "unknown-section-" + op, "error": error}))

# several sections in one put: checked whole before anything is written
s = Store("several.json")
s.put("wifi", networks=[{"ssid": "home", "password": "pw-several-1"}])
for case, args, kw in (("several-unknown", ({"cloud": {"token": "t-3"}, "secrets": {"a": 1}},),
                        {}),
                       ("several-bad-value", ({"cloud": {"token": "t-3"},
                                               "wifi": {"networks": [[[[[1]]]]]}},), {}),
                       ("several-and-fields", ({"cloud": {"token": "t-3"}},), {"x": 1})):
    try:
        s.put(*args, **kw)
        error = None
    except (ValueError, TypeError) as e:
        error = type(e).__name__ + ": " + str(e)
    print(json.dumps({"case": case, "error": error, "writes": s.writes,
                      "stored": Store("several.json").load()}))
print(json.dumps({"case": "several", "changed": s.put({"cloud": {"token": "t-3"},
                                                       "wifi": {"networks": None}}),
                  "writes": s.writes, "stored": Store("several.json").load()}))

# a Store not loaded yet: nothing read, nothing passed over, nothing written
s = Store("never.json")
print(json.dumps({"case": "new", "status": s.status, "problems": s.problems,
                  "writes": s.writes, "repr": repr(s)}))

# repr: where, which generation, how it loaded and the section names, no value
s = Store("repr.json")
s.put("wifi", networks=[{"ssid": "home", "password": "pw-in-repr-1"}])
s.put("meta", note="n")
print(json.dumps({"case": "repr", "repr": repr(s)}))

# clear() when the previous generation is already gone (removed by hand
# after the store fell back to it): missing is fine, the clear still happens
P = "onboard.json"
s = Store(P)
s.put("wifi", networks=[{"ssid": "home", "password": "pw-first-1"}])
s.put("wifi", networks=[{"ssid": "home", "password": "pw-second-2"}])
os.remove(P)
s = Store(P)
s.load()
os.remove(P + ".prev")
try:
    cleared, error = s.clear("wifi"), None
except OSError as e:
    cleared, error = None, repr(e)
back = Store(P)
print(json.dumps({"case": "clear-prev-gone", "cleared": cleared, "error": error,
                  "stored": back.load(), "status": back.status,
                  "files": sorted(f for f in os.listdir() if f.startswith(P))}))
"""

NESTED = "store: field 'deep' holds a value that cannot be stored"


@pytest.fixture(scope="module")
def cases(mpy_in):
    run = mpy_in("store_values").run(SCRIPT)
    return {d["case"]: d for d in (json.loads(x) for x in run.lines if x.startswith("{"))}


@pytest.mark.parametrize("case,value", [("float", 21.5), ("negative-float", -0.25)])
def test_a_finite_float_is_stored_and_loads_back(cases, case, value):
    got = cases[case]
    assert (got["changed"], got["error"], got["stored"]) == (True, None, {"reading": value})


@pytest.mark.parametrize("case,value", [("depth-4-list", [[[[1]]]]),
                                        ("depth-4-dict", {"a": {"b": {"c": {"d": 1}}}})])
def test_a_value_nested_four_levels_is_stored_and_loads_back(cases, case, value):
    got = cases[case]
    assert (got["changed"], got["error"], got["stored"]) == (True, None, {"deep": value})


@pytest.mark.parametrize("case", ["depth-5-list", "depth-5-dict"])
def test_a_value_nested_five_levels_is_refused_naming_the_field_and_not_written(cases, case):
    got = cases[case]
    assert (got["error"], got["stored"], got["status"]) == (NESTED, None, "empty")


def test_an_object_with_a_key_that_is_not_a_string_is_refused_and_not_written(cases):
    # JSON would turn the key 2 into "2": what loads back would differ
    got = cases["number-key"]
    assert (got["error"], got["stored"], got["status"]) == (NESTED, None, "empty")


def test_changing_what_was_put_or_what_get_and_load_gave_changes_nothing_stored(cases):
    got = cases["copies"]
    want = {"networks": [{"ssid": "home", "password": "pw-copy-1"}]}
    assert got["views"] == [want, want, want]
    assert (got["same-put"], got["writes"]) == (False, 1)


def test_a_tuple_is_held_as_a_list_so_the_same_list_writes_nothing(cases):
    got = cases["tuple"]
    assert (got["type"], got["same-put"], got["writes"]) == ("list", False, 1)


def test_put_on_a_store_not_loaded_yet_keeps_what_the_flash_holds(cases):
    assert cases["put-before-load"]["stored"] == {
        "wifi": {"networks": [{"ssid": "home", "password": "pw-boot-1"}]},
        "cloud": {"token": "t-1"}}


def test_clear_on_a_store_not_loaded_yet_clears_what_the_flash_holds(cases):
    got = cases["clear-before-load"]
    assert (got["cleared"], got["stored"]) == (True, {"cloud": {"token": "t-1"}})


def test_clear_of_a_section_not_there_says_false(cases):
    assert cases["clear-before-load"]["absent"] is False


def test_removing_the_last_field_of_a_section_removes_it_from_the_flash(cases):
    assert cases["last-field"]["stored"] == {"meta": {"note": "kept"}}


@pytest.mark.parametrize("op", ["get", "put", "clear"])
def test_an_unknown_section_is_refused_naming_it(cases, op):
    assert cases["unknown-section-" + op]["error"] == "store: unknown section 'secrets'"


def test_a_store_not_loaded_yet_is_new_with_no_problems_and_no_writes(cases):
    assert cases["new"] == {"case": "new", "status": "new", "problems": [], "writes": 0,
                            "repr": "<Store never.json gen=0 status=new sections=>"}


def test_repr_names_path_generation_status_and_sections_in_order_without_values(cases):
    assert cases["repr"]["repr"] == "<Store repr.json gen=2 status=ok sections=meta,wifi>"


def test_clear_succeeds_when_the_previous_generation_is_already_gone(cases):
    got = cases["clear-prev-gone"]
    assert (got["cleared"], got["error"], got["stored"]) == (True, None, {})
    assert (got["status"], got["files"]) == ("ok", ["onboard.json"])


@pytest.mark.parametrize("case,error", [
    ("several-unknown", "ValueError: store: unknown section 'secrets'"),
    ("several-bad-value", "ValueError: " + NESTED.replace("deep", "networks")),
    ("several-and-fields", "TypeError: unsupported type for __hash__: 'dict'")])
def test_a_put_of_several_sections_with_one_refused_writes_none_of_them(cases, case, error):
    got = cases[case]
    assert (got["error"], got["writes"]) == (error, 1)  # (1: the network put before)
    assert got["stored"] == {"wifi": {"networks": [{"ssid": "home", "password": "pw-several-1"}]}}


def test_a_put_of_several_sections_changes_them_all_in_one_write(cases):
    got = cases["several"]
    assert (got["changed"], got["writes"]) == (True, 2)
    assert got["stored"] == {"cloud": {"token": "t-3"}}  # (the section whose last field went)
