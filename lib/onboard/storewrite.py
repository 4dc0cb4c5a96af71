# Writing onboard.store's record: Store.put() and clear() load this module,
# write, and let go of it again, so the writing code is not in RAM between
# writes (a device writes when settings arrive, when last_error changes and
# when a token is renewed). The file layout and the order of the renames are
# described in store.py.
import json
import os
from binascii import crc32
from micropython import const

from onboard import log
from onboard.store import MAX_BYTES, VERSION

_REST = const(18)  # len('{"crc":"xxxxxxxx",')
_ENOENT = const(2)
_TAG = const("store")


def _remove(path):
    # Missing is fine; a failing medium is not, the caller must hear of it.
    try:
        os.remove(path)
    except OSError as e:
        if e.errno != _ENOENT:
            raise


def commit(store, data, scrub_previous, sections):
    """Write data as the store's next generation (the previous one removed
    too with scrub_previous); ValueError names the sections put ({section:
    fields}) when the record would be over MAX_BYTES, OSError when the
    flash refuses."""
    gen = store._gen + 1
    head = b'"v":%d,"gen":%d,"data":' % (VERSION, gen)
    # the one copy of the record in RAM: MicroPython's str is its UTF-8
    # bytes, which crc32, memoryview and a file's write take as they are
    # (no joined or encoded copies: a write may come when the heap is fullest)
    data_text = json.dumps(data)
    size = len(memoryview(data_text))  # pyright: ignore  (a str is a buffer here)
    size += _REST + len(head) + 1
    # the bound is on the file's bytes, as load() reads it
    if size > MAX_BYTES:
        what = ""
        for section, fields in sections.items():
            what += ", section %r (%s)" % (section, ",".join(sorted(fields)))
        raise ValueError("store:%s would make the record %d bytes, over %d"
                         % (what[1:], size, MAX_BYTES))
    crc = crc32(b"}", crc32(data_text, crc32(head))) & 0xFFFFFFFF
    tmp = store.path + ".tmp"
    prev = store.path + ".prev"
    try:
        with open(tmp, "wb") as f:
            f.write(b'{"crc":"%08x",' % crc)
            f.write(head)
            f.write(data_text)
            f.write(b"}")
        del data_text
        if store.status == "ok":
            os.rename(store.path, prev)
        else:  # damaged or unreadable: never rotate it over a good .prev
            _remove(store.path)
        os.rename(tmp, store.path)
        if scrub_previous:
            _remove(prev)
    except OSError:
        # The files may be anywhere between old and new: reread on next use.
        store.status = "new"
        raise
    store._gen = gen
    store._data = data
    store.status = "ok"
    store.problems = []
    store.writes += 1
    log.debug(_TAG, "wrote generation %d", gen)
