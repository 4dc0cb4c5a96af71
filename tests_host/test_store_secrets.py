"""Secrets read back from flash at boot are masked in the log: a second
process (a reboot) only loads the store, then logs the values it holds."""

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
