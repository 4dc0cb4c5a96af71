"""A person configures the device in a real browser: headless Chromium
(Debian's package) driven by Playwright, against a simulated device."""

import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make setup`")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def test_person_fills_the_portal_form_and_sees_the_success_message(device, browser):
    d = device()
    url = d.wait_state("WAIT_CONFIG")["portal"]
    page = browser.new_page()
    page.goto(url)
    assert page.title().startswith("Acme Sensor-")
    page.fill("input[name=ssid]", "home")
    page.fill("input[name=pass]", "correct horse")
    page.fill("input[name=blynk]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Trying to connect...")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "portal-configured.png"))
    assert d.store()["wifi"]["networks"][0] == {"ssid": "home", "password": "correct horse"}
    d.wait_state("CONNECTING_NET")


def test_form_page_as_a_person_sees_it(device, browser):
    d = device()
    page = browser.new_page()
    page.goto(d.wait_state("WAIT_CONFIG")["portal"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "portal-form.png"))
    options = page.eval_on_selector_all("datalist option", "els => els.map(e => e.value)")
    assert options == ["home", "cafe"]
