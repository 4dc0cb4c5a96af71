# Durable credential store: one JSON record that survives a power cut at any
# instant, on LittleFS and on FAT.
#
# File layout (still plain JSON, so a person can read it with mpremote cat):
#   {"crc":"<crc32 of the rest, 8 lower-case hex>","v":1,"gen":N,"data":{...}}
# A write goes to <path>.tmp, is closed, then the current file is renamed to
# <path>.prev and the temp file renamed to <path>. LittleFS renames are
# atomic; on FAT a rename is two directory updates, so <path>.prev keeps the
# previous generation and load() falls back to it when <path> is missing,
# torn or corrupt. The temp file is never trusted.
# The reading and the writing are modules of their own (onboard.storeread,
# onboard.storewrite), loaded for a load or a write and let go of after it:
# between the two, only the record and this module's checks stay in RAM.
from micropython import const

from onboard import log

SECTIONS = ("wifi", "enrol", "cloud", "state", "meta")
VERSION = const(1)
MAX_BYTES = const(8192)  # bound on what load() reads and put() writes
_MAX_DEPTH = const(4)

# Where the record in memory came from (Store.status), a word:
#   "new"       not loaded yet
#   "ok"        the current file
#   "previous"  current file missing or damaged, previous generation used
#   "empty"     no store files: a fresh device
#   "damaged"   files present, none valid: started empty
# (words, not module names: each name would cost RAM for as long as the
# store is loaded, which is always)


def _check_value(value, field, depth=0):
    # Only what JSON carries exactly; the message names the field, not the value.
    if value is None or value is True or value is False:
        return
    t = type(value)
    if t is str or t is int:
        return
    if t is float:
        # json.dumps writes inf, -inf and nan as bare words, which no JSON
        # reader (load() included) accepts; x - x is 0.0 only when x is finite
        if value - value == 0:
            return
        raise ValueError("store: field %r holds a number that is not finite" % field)
    if depth < _MAX_DEPTH:
        if t is list or t is tuple:
            for v in value:
                _check_value(v, field, depth + 1)
            return
        if t is dict:
            for k, v in value.items():
                if type(k) is not str:
                    break
                _check_value(v, field, depth + 1)
            else:
                return
    raise ValueError("store: field %r holds a value that cannot be stored" % field)


def _copy(value):
    # (a loop and map, not comprehensions: each of those is one more function
    # in RAM while the module is loaded)
    t = type(value)
    if t is dict:
        d = {}
        for k, v in value.items():
            d[k] = _copy(v)
        return d
    if t is list or t is tuple:
        return list(map(_copy, value))
    return value


def _register_secrets(obj):
    # Every value under a secret-named key is masked by the log from now on.
    if type(obj) is dict:
        for k, v in obj.items():
            if type(v) is str and log.is_secret_key(k):
                log.secret(v)
            else:
                _register_secrets(v)
    elif type(obj) is list:
        for v in obj:
            _register_secrets(v)


def let_go(name):
    """Let go of onboard.<name> (a dotted name for a subpackage's module):
    out of sys.modules and off its package, so that nothing here keeps its
    code in RAM. Imported again when needed. (The store's reading and
    writing use it, and so does Runtime.forget: here, in a module the
    runtime always holds, and not in the package, which the HTTP and MQTT
    clients load too: there it cost them 768 B of heap on 32-bit.)"""
    import sys

    sys.modules.pop("onboard." + name, None)
    package, _, name = ("onboard." + name).rpartition(".")
    package = sys.modules.get(package)
    if package and name in package.__dict__:
        delattr(package, name)


class Store:
    """One durable record of sections, see DESIGN.md section 3."""

    def __init__(self, path="/onboard.json"):
        self.path = path
        self.writes = 0
        self.status = "new"
        self.problems = []  # (file, why) for every file load() passed over
        self._gen = 0
        self._data = {}

    def __repr__(self):
        return "<Store %s gen=%d status=%s sections=%s>" % (
            self.path,
            self._gen,
            self.status,
            ",".join(sorted(self._data)),
        )

    def load(self):
        """Read the newest valid generation; never raises on a bad file.
        The reading is onboard.storeread's, loaded for it and let go of
        after: a device reads its store at boot, and again only after a
        write failed."""
        from onboard import storeread

        try:
            return storeread.load(self)
        finally:
            let_go("storeread")

    def _loaded(self):
        if self.status == "new":
            self.load()

    def get(self, section):
        """A copy of one section (empty dict when absent)."""
        self._check_section(section)
        self._loaded()
        return _copy(self._data.get(section, {}))

    def put(self, section, **fields):
        """Merge fields into a section with one write; a None value removes
        the field. Returns True when something changed and was written.
        Several sections at once: put({section: fields, ...}), one write
        too, so a power cut leaves all of them old or all of them new (and no
        fields beside). (One method, not two: each costs RAM for as long as
        the store is loaded.)"""
        sections = section
        if type(section) is not dict or fields:
            # (a dict of sections with fields beside becomes a section name:
            # TypeError, unhashable, and nothing written)
            sections = {section: fields}  # pyright: ignore  (that TypeError is the refusal)
        for section, fields in sections.items():
            self._check_section(section)
            for k, v in fields.items():
                _check_value(v, k)
        self._loaded()
        data = dict(self._data)
        for section, fields in sections.items():
            new = dict(data.get(section, {}))
            for k, v in fields.items():
                if v is None:
                    new.pop(k, None)
                else:
                    new[k] = _copy(v)
            if new:
                data[section] = new
            else:
                data.pop(section, None)
        if data == self._data:
            return False
        self._commit(data, False, sections)
        for section in sections:
            _register_secrets(data.get(section))
        return True

    def clear(self, *sections):
        """Remove the named sections (none named: everything) with one write.
        The previous generation is removed too, so cleared secrets do not
        linger on flash."""
        for s in sections:
            self._check_section(s)
        self._loaded()
        names = sections or SECTIONS
        data = dict(self._data)
        for k in names:
            data.pop(k, None)
        if data == self._data:
            return False
        self._commit(data, True)
        return True

    def _check_section(self, section):
        if section not in SECTIONS:
            raise ValueError("store: unknown section %r" % section)

    def _commit(self, data, scrub_previous, sections=None):
        # onboard.storewrite's, loaded for the write and let go of after it
        from onboard import storewrite

        try:
            storewrite.commit(self, data, scrub_previous, sections)
        finally:
            let_go("storewrite")
