# Reading onboard.store's files back: Store.load() loads this module, reads,
# and lets go of it again, so the reading code is not in RAM for the rest of
# a device's life (it reads its store once, at boot, and after a failed write).
# The file layout and the fallback to <path>.prev are described in store.py.
import json
import os
from binascii import crc32
from micropython import const

from onboard import log
from onboard.store import MAX_BYTES, SECTIONS, VERSION, _copy, _register_secrets

_HEAD = const(b'{"crc":"')
_REST = const(18)  # len('{"crc":"xxxxxxxx",')
_TAG = const("store")


def parse(raw):
    """(gen, data) from the bytes of a store file; ValueError says why not."""
    if len(raw) < _REST + 2 or raw[:8] != _HEAD or raw[16:_REST] != b'",':
        raise ValueError("not a store file")
    rest = memoryview(raw)[_REST:]
    if ("%08x" % (crc32(rest) & 0xFFFFFFFF)).encode() != raw[8:16]:
        raise ValueError("checksum mismatch")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeError):
        raise ValueError("not JSON") from None
    if type(doc) is not dict or doc.get("v") != VERSION:
        raise ValueError("unknown schema version")
    gen = doc.get("gen")
    data = doc.get("data")
    if type(gen) is not int or gen < 0 or type(data) is not dict:
        raise ValueError("malformed record")
    for name in SECTIONS:
        if type(data.get(name, {})) is not dict:
            raise ValueError("malformed section")
    return gen, {k: v for k, v in data.items() if k in SECTIONS}


def load(store):
    """Store.load(): the newest valid generation into store, a copy returned."""
    store.problems = []
    status = "empty"
    gen, data = 0, {}
    for path, found in ((store.path, "ok"), (store.path + ".prev", "previous")):
        try:
            size = os.stat(path)[6]
        except OSError:
            continue  # missing
        try:  # damaged: passed over, saying why
            if size > MAX_BYTES:
                raise ValueError("larger than %d bytes" % MAX_BYTES)
            try:
                with open(path, "rb") as f:
                    raw = f.read(MAX_BYTES + 1)
            except OSError as e:
                raise ValueError("unreadable (%s)" % e) from None
            gen, data = parse(raw)
        except ValueError as e:
            store.problems.append((path, str(e)))
            status = "damaged"
            continue
        status = found
        break
    store._gen = gen
    store._data = data
    store.status = status
    for path, why in store.problems:
        log.warn(_TAG, "%s passed over: %s", path, why)
    if status == "previous":
        log.warn(_TAG, "using the previous generation %d", gen)
    elif status == "damaged":
        log.warn(_TAG, "no valid record, starting empty")
    _register_secrets(data)
    return _copy(data)
