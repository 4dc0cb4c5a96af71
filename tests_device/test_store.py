# Store on a real LittleFS (a RAM block device, so the board's own flash and
# its files are untouched). Run: make test-device PORT=/dev/ttyUSB0
import ramblock
from tinytest import summary, test

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
def repr_shows_no_secret():
    s = Store(P)
    s.load()
    assert "password-1" not in repr(s)


ramblock.umount("/t_store")
summary()
