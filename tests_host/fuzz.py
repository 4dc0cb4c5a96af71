"""Malformed inputs for parser tests: random bytes and mutated valid ones."""

import random


def mutations(valid, n, seed, max_random=40):
    """n inputs: every other one random bytes (up to max_random), the rest a
    valid input with one to three bytes changed, cut off or inserted."""
    rnd = random.Random(seed)
    out = []
    for k in range(n):
        if k % 2:
            out.append(rnd.randbytes(rnd.randrange(0, max_random)))
            continue
        m = bytearray(rnd.choice(valid))
        for _ in range(rnd.randrange(1, 4)):
            op = rnd.randrange(3)
            if op == 0 and m:
                m[rnd.randrange(len(m))] = rnd.randrange(256)
            elif op == 1 and m:
                del m[rnd.randrange(len(m)):]
            else:
                m.insert(rnd.randrange(len(m) + 1), rnd.randrange(256))
        out.append(bytes(m))
    return out


def survive(mpy, inputs, module, call, prefix, heapsize, after=""):
    """Run module.call(input) on the Unix port for every input: each may only
    fail with a ValueError whose message starts with prefix. Returns (inputs
    run, inputs refused, the lines the `after` statement printed)."""
    blob = bytearray()
    for m in inputs:
        blob += len(m).to_bytes(2, "big") + m
    (mpy.workdir / "fuzz.bin").write_bytes(blob)
    out = mpy.run(f"""
        from onboard import {module}
        d = open("fuzz.bin", "rb").read()
        i = n = bad = 0
        while i < len(d):
            ln = int.from_bytes(d[i:i + 2], "big")
            m = d[i + 2:i + 2 + ln]
            i += 2 + ln
            n += 1
            try:
                {module}.{call}(m)
            except ValueError as e:
                assert str(e).startswith({prefix!r}), e
                bad += 1
        print(n, bad)
        {after}
    """, heapsize=heapsize, timeout=60).lines
    n, bad = map(int, out[0].split())
    return n, bad, out[1:]
