"""The simulated device's store reader (every "what was stored" assertion of
the end-to-end tests) is the product's own Store: a file it would refuse is
refused by the reader too."""

import pytest

from onboard_cli.simdevice import read_store

TWO_GENERATIONS = """
from onboard.store import Store
s = Store("onboard.json")
s.put("wifi", networks=[{"ssid": "home", "password": "pw-gen-one"}])
s.put("wifi", networks=[{"ssid": "home", "password": "pw-gen-two"}])
"""


@pytest.fixture
def flash(mpy):
    mpy.run(TWO_GENERATIONS)  # runs in mpy.workdir
    return mpy.workdir


def password(record):
    return record["data"]["wifi"]["networks"][0]["password"]


def test_reader_gives_the_current_generation_of_a_good_record(flash):
    record = read_store(flash)
    assert (record["gen"], record["status"], password(record)) == (2, "ok", "pw-gen-two")


def test_reader_refuses_a_current_file_whose_checksum_fails(flash):
    current = flash / "onboard.json"
    # still valid JSON, so only the checksum can tell
    current.write_bytes(current.read_bytes().replace(b"pw-gen-two", b"pw-gen-twO"))
    record = read_store(flash)
    assert (record["gen"], record["status"], password(record)) == (1, "previous", "pw-gen-one")


def test_reader_gives_an_empty_record_when_both_generations_are_damaged(flash):
    for name in ("onboard.json", "onboard.json.prev"):
        path = flash / name
        path.write_bytes(path.read_bytes().replace(b'"v":1,', b'"v":7,'))
    record = read_store(flash)
    assert (record["gen"], record["status"], record["data"]) == (0, "damaged", {})


def test_reader_of_an_empty_flash_gives_an_empty_record(tmp_path):
    record = read_store(tmp_path)
    assert (record["gen"], record["status"], record["data"]) == (0, "empty", {})
