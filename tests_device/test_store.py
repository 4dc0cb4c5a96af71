# Store on a real LittleFS (a RAM block device, so the board's own flash and
# its files are untouched). Run: make test-device PORT=/dev/ttyUSB0
import ramblock
from tinytest import raises, summary, test

from onboard import log
from onboard.store import Store

ramblock.mount(ramblock.lfs(), "lfs", "/t_store")
P = "/t_store/onboard.json"


@test
def fresh_store_is_empty():
    s = Store(P)
    assert s.load() == {}
    assert s.status == "empty"


@test
def put_persists_across_a_new_store_object():
    Store(P).put("wifi", networks=[{"ssid": "home", "password": "password-1"}])
    assert Store(P).get("wifi")["networks"][0]["ssid"] == "home"


@test
def unchanged_put_writes_nothing():
    s = Store(P)
    s.load()
    assert not s.put("wifi", networks=[{"ssid": "home", "password": "password-1"}])
    assert s.writes == 0


@test
def clear_removes_a_section():
    s = Store(P)
    s.put("enrol", token="0x01")
    s.clear("enrol")
    assert Store(P).get("enrol") == {}


@test
def repr_names_the_sections_but_no_value():
    s = Store(P)
    s.put("wifi", networks=[{"ssid": "home", "password": "password-1"}])
    assert s.get("wifi")["networks"][0]["password"] == "password-1"  # held, and
    text = repr(s)
    assert "wifi" in text and P in text
    assert "password-1" not in text and "home" not in text  # not shown


class Lines:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s


@test
def a_stored_secret_is_masked_in_the_log_after_a_fresh_load():
    Store(P).put("cloud", token="tok-5ecret-42")
    log.forget_secrets()  # as after a reboot: the log knows nothing yet
    Store(P).load()
    out, log.output = log.output, Lines()
    try:
        log.warn("test", "sending %s", "tok-5ecret-42")
        text = log.output.text
    finally:
        log.output = out
    assert "tok-5ecret-42" not in text and log.MASK in text


def raw():
    with open(P, "rb") as f:
        return f.read()


@test
def record_over_8_kb_of_utf8_is_refused_and_the_flash_kept():
    s = Store(P)
    s.load()
    before = raw()
    e = raises(ValueError, s.put, "state", note="\u20ac" * 2800)  # 2,800 chars, 8,400 bytes
    assert str(e).startswith("store: section 'state' (note) ")
    assert s.writes == 0 and raw() == before
    assert Store(P).get("state") == {}


@test
def non_finite_number_is_refused_naming_the_field_and_the_flash_kept():
    s = Store(P)
    s.load()
    before = raw()
    for bad in (float("inf"), float("-inf"), float("nan")):
        e = raises(ValueError, s.put, "state", reading=bad)
        assert str(e) == "store: field 'reading' holds a number that is not finite"
    assert s.writes == 0 and raw() == before


ramblock.umount("/t_store")
summary()
