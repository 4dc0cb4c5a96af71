"""onboard.cbor under the Unix port, checked against cbor2 (another implementation)."""


import cbor2
import pytest
from fuzz import mutations, survive

SAMPLES = [
    0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -24, -25, -256, -257, -(2**32), -(2**64),
    True, False, None,
    1.5, -0.0, 0.1, 1e300, -2.5e-10, 3.4028234663852886e38,
    "", "a", "héllo ✓", "x" * 300, b"", b"\x00\xff", bytes(range(256)) * 2,
    [], [1, "two", b"3", [4.0, None]], {},
    {"di": "abc", "n": 5, "links": [{"href": "/a", "rt": ["x"]}]},
    {1: "int key", b"k": False},
    [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]],
]

MAX_DEPTH_NEST = 16


def run_lines(mpy, body, lines):
    """Run `body` in MicroPython over each hex line of input, print a line per input."""
    data = mpy.workdir / "in.txt"
    data.write_text("\n".join(lines) + "\n")
    return mpy.run(f"""
        import binascii
        from onboard import cbor
        for line in open("in.txt"):
            line = line.strip()
            if not line:
                continue
            d = binascii.unhexlify(line)
{body}
    """).lines


def test_cbor2_encodings_decode_and_reencode_to_the_same_values(mpy):
    lines = [cbor2.dumps(o).hex() for o in SAMPLES]
    # the shortest float forms too (half and single precision)
    lines += [cbor2.dumps(o, canonical=True).hex() for o in SAMPLES]
    out = run_lines(mpy, "            print(binascii.hexlify(cbor.dumps(cbor.loads(d))).decode())",
                    lines)
    assert len(out) == 2 * len(SAMPLES)
    for o, ours in zip(SAMPLES + SAMPLES, out, strict=True):
        assert cbor2.loads(bytes.fromhex(ours)) == o


def test_half_precision_floats_decode_to_their_values(mpy):
    halves = [0.0, 1.0, -2.0, 65504.0, 5.960464477539063e-08, 6.103515625e-05,
              float("inf"), float("-inf")]
    lines = [cbor2.dumps(h, canonical=True).hex() for h in halves]
    assert all(line.startswith("f9") for line in lines)
    out = run_lines(mpy, "            print(repr(cbor.loads(d)))", lines)
    assert [float(x) for x in out] == halves


def test_our_encoding_decodes_with_cbor2_for_every_type(mpy):
    out = mpy.run("""
        import binascii
        from onboard import cbor
        print(binascii.hexlify(cbor.dumps({"i": [0, 24, 65536, 2**40, -1, -300], "f": [1.5, 0.1],
            "s": "é", "b": b"\\x01", "t": True, "F": False, "n": None, "l": (1, 2)})).decode())
    """).lines
    assert cbor2.loads(bytes.fromhex(out[0])) == {
        "i": [0, 24, 65536, 2**40, -1, -300], "f": [1.5, 0.1], "s": "é", "b": b"\x01",
        "t": True, "F": False, "n": None, "l": [1, 2]}


def test_integers_and_strings_take_the_shortest_head_as_cbor2_writes_them(mpy):
    # RFC 8949 section 4.1, preferred serialization: the shortest argument
    scalars = [o for o in SAMPLES if not isinstance(o, (float, dict, list))]
    lines = [cbor2.dumps(o).hex() for o in scalars]
    out = run_lines(mpy, "            print(binascii.hexlify(cbor.dumps(cbor.loads(d))).decode())",
                    lines)
    assert out == lines


# run_lines' body: what loads() makes of each input, or why it refuses it
LOADS_OR_WHY = """            try:
                print(repr(cbor.loads(d)))
            except ValueError as e:
                print(e)"""


def _each(mpy, call, args):
    """call(arg) for each arg (Python source text): its hex, or its ValueError."""
    return mpy.run(f"""
        import binascii
        from onboard import cbor
        for a in {args!r}:
            try:
                print(binascii.hexlify(cbor.{call}(eval(a))).decode())
            except ValueError as e:
                print(e)
    """).lines


def test_integers_past_64_bits_are_refused_as_too_large(mpy):
    assert _each(mpy, "dumps", ["2**64 - 1", "2**64", "-(2**64)", "-(2**64) - 1", "[2**70]"]) == [
        cbor2.dumps(2**64 - 1).hex(), "cbor: too large", cbor2.dumps(-(2**64)).hex(),
        "cbor: too large", "cbor: too large"]


def test_a_value_of_no_cbor_type_is_refused_as_unsupported(mpy):
    assert _each(mpy, "dumps", ["{1, 2}", "object()", "[1, range(3)]", "{'k': print}"]) == [
        "cbor: unsupported"] * 4


def test_what_the_subset_leaves_out_is_refused_naming_why(mpy):
    cases = {
        "c11a5f5e1000": "cbor: unsupported",      # tag 1 (an epoch date)
        "d82001": "cbor: unsupported",            # tag 32 (a URI) over one byte
        "c2a0": "cbor: unsupported",              # tag 2 over an empty map
        "f3": "cbor: unsupported",                # simple value 19
        "f7": "cbor: unsupported",                # undefined
        "f820": "cbor: unsupported",              # simple value 32
        "62c328": "cbor: bad UTF-8",              # a text string of invalid UTF-8
        "0102": "cbor: trailing bytes",           # two items
        "a10102ff": "cbor: trailing bytes",       # a map, then a stray break
    }
    out = run_lines(mpy, LOADS_OR_WHY, list(cases))
    assert dict(zip(cases, out, strict=True)) == cases


def _nest(kind, levels):
    """levels lists, or maps holding the next as a value, around the integer 1,
    as Python source."""
    text = "1"
    for _ in range(levels):
        text = f"[{text}]" if kind == "list" else "{'k': %s}" % text
    return text


@pytest.mark.parametrize("kind", ["list", "map"])
def test_nesting_up_to_the_bound_is_taken_both_ways(mpy, kind):
    value = eval(_nest(kind, MAX_DEPTH_NEST))
    assert _each(mpy, "dumps", [_nest(kind, MAX_DEPTH_NEST)]) == [cbor2.dumps(value).hex()]
    out = run_lines(mpy, "            print(repr(cbor.loads(d)))", [cbor2.dumps(value).hex()])
    assert out == [repr(value)]


@pytest.mark.parametrize("kind", ["list", "map"])
def test_nesting_past_the_bound_is_refused_both_ways(mpy, kind):
    value = eval(_nest(kind, MAX_DEPTH_NEST + 1))
    assert _each(mpy, "dumps", [_nest(kind, MAX_DEPTH_NEST + 1)]) == ["cbor: too deep"]
    out = run_lines(mpy, LOADS_OR_WHY, [cbor2.dumps(value).hex()])
    assert out == ["cbor: too deep"]


def test_indefinite_lengths_and_huge_counts_are_refused_without_allocating(mpy):
    out = mpy.run("""
        from onboard import cbor
        for d in (b"\\x9f\\x01\\xff", b"\\x5f\\xff",
                  b"\\x9b\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x00",
                  b"\\x5a\\xff\\xff\\xff\\xff", b"\\x63ab"):
            try:
                cbor.loads(d)
                print("accepted")
            except ValueError as e:
                print(e)
    """, heapsize="64k").lines
    assert out == ["cbor: indefinite length", "cbor: indefinite length", "cbor: truncated",
                   "cbor: truncated", "cbor: truncated"]


def _mutations(n, seed=12):
    return mutations([cbor2.dumps(o) for o in SAMPLES], n, seed)


def test_twenty_thousand_malformed_inputs_raise_only_value_error(mpy):
    n, bad, after = survive(mpy, _mutations(20000), "cbor", "loads", "cbor: ", "1m",
                            after='print(cbor.loads(b"\\xa1\\x62di\\x63abc"))')
    assert n == 20000 and bad > 10000
    assert after == ["{'di': 'abc'}"]
