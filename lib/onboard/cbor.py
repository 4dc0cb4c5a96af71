# CBOR (RFC 8949), the subset OCF bodies use: maps, arrays, text and byte
# strings, integers (to 64 bits, negative too), booleans, null, floats.
#   dumps(obj) -> bytearray    (floats as double)
#   loads(data) -> object  (half, single and double floats decoded)
# Bad input raises ValueError("cbor: <why>") and nothing else: lengths are
# checked against the data before anything is allocated (so an allocation
# never exceeds the input's size), nesting is bounded to _DEPTH, indefinite
# lengths, tags and other simple values are refused, trailing bytes too.
import struct
from micropython import const

_DEPTH = const(16)


def _err(why):
    return ValueError("cbor: " + why)


def _head(b, major, n):
    if n < 24:
        b.append(major << 5 | n)
        return
    ai = 24
    while n >> (8 << (ai - 24)):
        ai += 1
    if ai > 27:
        raise _err("too large")
    b.append(major << 5 | ai)
    b.extend(n.to_bytes(1 << (ai - 24), "big"))


def _enc(b, o, depth):
    if depth > _DEPTH:
        raise _err("too deep")
    if o is None:
        b.append(0xF6)
    elif o is True or o is False:
        b.append(0xF4 + o)
    elif isinstance(o, int):
        if o < 0:
            _head(b, 1, -1 - o)
        else:
            _head(b, 0, o)
    elif isinstance(o, float):
        b.append(0xFB)
        b.extend(struct.pack(">d", o))
    elif isinstance(o, str):
        o = o.encode()
        _head(b, 3, len(o))
        b.extend(o)
    elif isinstance(o, (bytes, bytearray)):
        _head(b, 2, len(o))
        b.extend(o)
    elif isinstance(o, (list, tuple)):
        _head(b, 4, len(o))
        for x in o:
            _enc(b, x, depth + 1)
    elif isinstance(o, dict):
        _head(b, 5, len(o))
        for k in o:
            _enc(b, k, depth + 1)
            _enc(b, o[k], depth + 1)
    else:
        raise _err("unsupported")


def dumps(obj):
    b = bytearray()  # (returned as it is: no copy)
    _enc(b, obj, 0)
    return b


def _dec(d, i, depth):
    # the item at d[i]: (object, index after it)
    if depth > _DEPTH:
        raise _err("too deep")
    end = len(d)
    if i >= end:
        raise _err("truncated")
    mt = d[i] >> 5
    n = d[i] & 31
    i += 1
    if n > 27:
        raise _err("indefinite length")  # (or a reserved one)
    if n > 23:
        w = 1 << (n - 24)
        if i + w > end:
            raise _err("truncated")
        raw = bytes(d[i : i + w])
        i += w
        if mt == 7 and w > 1:  # a half, single or double float
            return struct.unpack(">" + "-e-f---d"[w - 1], raw)[0], i
        n = int.from_bytes(raw, "big")
    if mt == 0:
        return n, i
    if mt == 1:
        return -1 - n, i
    # a string's bytes, or a container's items (a byte each at least): a
    # count past the data is refused before anything is allocated
    if mt < 6 and n > end - i:
        raise _err("truncated")
    if mt < 4:
        s = bytes(d[i : i + n])
        if mt == 3:
            try:
                s = s.decode()
            except Exception:
                raise _err("bad UTF-8") from None
        return s, i + n
    if mt < 6:
        if mt == 4:
            o = []
            for _ in range(n):
                x, i = _dec(d, i, depth + 1)
                o.append(x)
            return o, i
        o = {}
        for _ in range(n):
            k, i = _dec(d, i, depth + 1)
            if isinstance(k, (list, dict)):
                raise _err("unsupported")  # (a container as a map key)
            o[k], i = _dec(d, i, depth + 1)
        return o, i
    if mt == 7 and 19 < n < 23:
        return (False, True, None)[n - 20], i
    raise _err("unsupported")


def loads(data):
    o, i = _dec(data, 0, 0)
    if i != len(data):
        raise _err("trailing bytes")
    return o
