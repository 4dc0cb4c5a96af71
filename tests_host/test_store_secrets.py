"""Secrets in the store are masked in the log: read back from flash at boot
(a second process only loads the store, then logs the values it holds),
and put in this process (logged right after the put, with no load between)."""

WRITE = """
from onboard.store import Store
Store("onboard.json").put("wifi", networks=[{"ssid": "home", "password": "pw-boot-5ecret"}])
Store("onboard.json").put("cloud", token="tok-boot-5ecret")
"""

BOOT = """
from onboard import log
from onboard.store import Store
rec = Store("onboard.json").load()
log.info("app", "joining %s with %s", rec["wifi"]["networks"][0]["ssid"],
         rec["wifi"]["networks"][0]["password"])
log.info("app", "cloud login %s", rec["cloud"]["token"])
"""


def test_secrets_read_back_at_boot_are_masked_in_the_log(mpy):
    mpy.run(WRITE)
    run = mpy.run(BOOT)
    out = run.stdout + run.stderr
    assert "I app: joining home with ***" in out
    assert "I app: cloud login ***" in out
    assert "5ecret" not in out


PUT_THEN_LOG = """
from onboard import log
from onboard.store import Store
Store("fresh.json").put("cloud", token="tok-put-5ecret", note="plain")
log.info("app", "cloud login %s", "tok-put-5ecret")
"""


def test_a_secret_put_in_this_process_is_masked_in_the_log_at_once(mpy):
    run = mpy.run(PUT_THEN_LOG)
    out = run.stdout + run.stderr
    assert "I app: cloud login ***" in out
    assert "5ecret" not in out
