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
