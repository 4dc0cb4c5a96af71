"""onboard.cbor under the Unix port, checked against cbor2 (another implementation)."""


import cbor2
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


def test_nesting_past_the_bound_is_refused_both_ways(mpy):
    deep = b"\x81" * (MAX_DEPTH_NEST + 1) + b"\x01"
    out = mpy.run(f"""
        from onboard import cbor
        nest = 1
        for _ in range({MAX_DEPTH_NEST + 1}):
            nest = [nest]
        for f, a in ((cbor.loads, {deep!r}), (cbor.dumps, nest)):
            try:
                f(a)
                print("accepted")
            except ValueError as e:
                print(e)
    """).lines
    assert out == ["cbor: too deep", "cbor: too deep"]


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
