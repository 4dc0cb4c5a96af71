"""What a device keeps loaded in each state (issue 14): a state's code is
loaded for it and let go of afterwards. Seen in its state events: with
report_heap on, each lists the onboard modules loaded (sys.modules) at that
change. A module let go of but still referenced stays in RAM all the same:
that shows in the heap figures of `make bench`, not here."""

import ast
import re
import urllib.parse

from conftest import LIB
from test_faults import blynk_device
from test_portal import get
from test_profiles import configure, port_of
from test_spokezone import WEEK, make, renewals

from onboard_cli import manifest
from onboard_cli.build import build, module_name
from onboard_cli.simdevice import DEFAULT_RADIO

SETUP_MODE = {"setupmode", "portal", "page", "dns", "improv"}
# (and the Blynk profile's online part, which the session loads through the profile)
SESSION = {"session", "cloud", "net", "errors", "amqtt", "mqttbase", "clouds.blynk_online"}
# booting, the profile's HTTPS, the time sync, the CA's loader and the TLS context's
# maker, the store's reader: done with before RUNNING (booting and the reader before
# the first state)
ONCE = {"cloudapi", "ahttp", "httpmsg", "redirect", "chunked", "timesync", "httpdate", "ca",
        "cloudtls", "storeread", "boot"}


# the error kinds and what a failure means: loaded when something fails, not before
FAILURE = {"errors", "failed"}
# the Wi-Fi manager: setup mode's checks and saved networks, and the joining
# code (wifijoin) that only CONNECTING_NET and Improv load
WIFI = {"wifi", "wifijoin"}


def online_holds_nothing_of(event):
    """The modules of setup mode, Wi-Fi, ONCE and, on a way online where
    nothing failed, FAILURE's that an online event still holds."""
    return (SETUP_MODE | ONCE | FAILURE | WIFI) & set(event["loaded"])


def test_online_the_device_holds_no_setup_mode_wifi_manager_or_https_code(device, cloudsim):
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    assert online_holds_nothing_of(d.wait_state("RUNNING")) == set()


def test_in_setup_mode_again_the_device_holds_no_session_code(device, cloudsim):
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    d.wait_state("RUNNING")
    d.press(2000)  # setup mode while online, keeping the settings
    again = d.wait_state("WAIT_CONFIG")
    assert (SESSION | ONCE) & set(again["loaded"]) == set()
    assert port_of(again)  # and its portal is up


def test_the_first_setup_mode_holds_no_session_code(device, cloudsim):
    d, _ = blynk_device(device, cloudsim, report_heap=True)
    first = d.wait_state("WAIT_CONFIG")
    assert (SESSION | ONCE) & set(first["loaded"]) == set()


def test_a_heap_report_counts_the_names_interned_so_far_which_are_never_freed(device, cloudsim):
    # (the benchmarks' figure: MicroPython's qstr pool line, which the Unix
    # board prints before an event with a heap figure and `onboard device run`
    # adds to it; the session's code is let go of, its names stay)
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    online = d.wait_state("RUNNING")
    first = next(e for e in d.events if e["state"] == "WAIT_CONFIG")
    assert 0 < first["names"] < online["names"]
    assert 0 < first["names_bytes"] < online["names_bytes"]


def test_setup_mode_on_a_serial_line_nobody_speaks_on_holds_no_improv_code(device, cloudsim,
                                                                           tmp_path):
    # (a board's USB serial is always there; its first byte loads Improv: test_improv)
    d, _ = blynk_device(device, cloudsim, report_heap=True, serial=tmp_path / "tty")
    assert "improv" not in d.wait_state("WAIT_CONFIG")["loaded"]


def test_setup_mode_holds_no_wifi_joining_code_first_or_again(device, cloudsim):
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    d.wait_state("RUNNING")  # (joined: CONNECTING_NET loaded the joining code)
    d.press(2000)
    again = d.wait_state("WAIT_CONFIG")
    first = next(e for e in d.events if e["state"] == "WAIT_CONFIG")
    assert ("wifi" in first["loaded"], "wifijoin" in first["loaded"]) == (True, False)
    assert ("wifi" in again["loaded"], "wifijoin" in again["loaded"]) == (True, False)


def test_settings_on_trial_hold_its_code_only_until_they_work(device, cloudsim):
    from test_blynk_app import reconfigure

    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    first = d.wait_state("RUNNING")
    reconfigure(d, ssid="cafe", **{"pass": ""}, **fields)  # saved networks: on trial
    tried = d.wait_state("CONNECTING_NET")
    online = d.wait_state("RUNNING")
    assert d.store()["wifi"]["networks"][0]["ssid"] == "cafe"  # (the trial did switch)
    assert ["trial" in e["loaded"] for e in (first, tried, online)] == [False, True, False]


def test_settings_on_trial_load_its_code_only_once_setup_mode_has_ended(device, cloudsim):
    # setup mode is the device's fullest state: the trial's code comes after
    # its code has been let go of, on the way to CONNECTING_NET
    from test_blynk_app import reconfigure

    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    d.wait_state("RUNNING")
    reconfigure(d, ssid="cafe", **{"pass": ""}, **fields)  # saved networks: on trial
    configuring = d.wait_state("CONFIGURING")
    tried = d.wait_state("CONNECTING_NET")
    assert ("trial" in configuring["loaded"], "trial" in tried["loaded"]) == (False, True)


def test_settings_on_trial_that_fail_leave_none_of_its_code(device, cloudsim):
    from test_blynk_app import reconfigure

    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    d.wait_state("RUNNING")
    reconfigure(d, ssid="home", **{"pass": "wrong horse!"}, **fields)
    tried = d.wait_state("CONNECTING_NET")
    failed = d.wait_state("WAIT_CONFIG", last_error=722)
    assert ("trial" in tried["loaded"], "trial" in failed["loaded"]) == (True, False)


def test_a_session_started_again_after_a_quick_redirect_holds_no_failure_code(device,
                                                                              cloudsim):
    # redirected at its first login: the next login waits a backoff (the
    # failure code loaded for it), and the session that follows holds none of it
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    blynk = cloudsim.clouds["blynk"]
    (dev_id,) = [i for i, dev in blynk.devices.items() if dev["token"] == fields["blynk"]]
    blynk.redirect_next_login(dev_id, f"mqtts://127.0.0.1:{cloudsim.front.tls_port}")
    configure(d, **fields)
    retry = d.wait_note("retry_in")
    online = d.wait_state("RUNNING")
    assert ("failed" in retry["loaded"], "failed" in online["loaded"]) == (True, False)


def test_a_failed_try_loads_the_failure_code_and_online_again_holds_none_of_it(device,
                                                                                cloudsim):
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    d.wait_state("RUNNING")
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])  # the network is lost
    retry = d.wait_note("retry_in")  # (said while the backoff runs)
    d.set_radio(DEFAULT_RADIO)
    online = d.wait_state("RUNNING")
    assert ("failed" in retry["loaded"], "failed" in online["loaded"]) == (True, False)


def test_while_a_failed_try_waits_its_backoff_it_holds_none_of_the_sessions_code(device,
                                                                                  cloudsim):
    # the session's code (MQTT client, the profile's online part) leaves RAM when the
    # session ends, not only once the backoff before the next try is over
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    online = d.wait_state("RUNNING")
    d.set_radio([n for n in DEFAULT_RADIO if n["ssid"] != "home"])  # the network is lost
    retry = d.wait_note("retry_in")  # (said while the backoff runs)
    session = {"amqtt", "mqttbase", "clouds.blynk_online"}
    assert session <= set(online["loaded"])
    assert session & set(retry["loaded"]) == set()


def test_a_renewal_while_online_runs_without_the_mqtt_clients_code(device, cloudsim):
    # Spoke Zone tokens living 12 s: each renewed over HTTPS 6 s before it
    # expires, between two MQTT sessions; the renewal's note lists what was
    # loaded then
    d, fields, _, _ = make(device, cloudsim, 12, cpu="cpu-renew-heap", report_heap=True)
    cloudsim.lifetimes["spokezone"] = 12
    try:
        configure(d, **fields)
        d.wait_state("RUNNING")
        before = renewals(cloudsim)
        renewed = d.wait_note("renewed")
    finally:
        cloudsim.lifetimes["spokezone"] = WEEK
    assert renewals(cloudsim) == before + 1  # (the renewal did reach the cloud)
    assert renewed["state"] == "RUNNING"  # (renewed while online)
    assert {"amqtt", "mqttbase"} & set(renewed["loaded"]) == set()


def test_no_state_of_a_life_holds_the_codes_module(device, cloudsim):
    # onboard.codes is the applications' table of states and codes; the
    # library folds the values in at compile time (a module and its names
    # held in every state, about 300 B on 32-bit, for a handful of numbers)
    d = online_then_setup_again(device, cloudsim)
    assert [e["state"] for e in d.events if "codes" in e["loaded"]] == []


def online_then_setup_again(device, cloudsim):
    """A Blynk device configured, online, then in setup mode again (the
    button): every state once, with the modules each held."""
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    configure(d, **fields)
    d.wait_state("RUNNING")
    d.press(2000)
    d.wait_state("WAIT_CONFIG")
    return d


def test_no_state_of_a_life_holds_the_stores_writing_code(device, cloudsim):
    # the settings, the cloud's fields and last_error are written in setup
    # mode and on the way online; the writing code is let go of after each
    d = online_then_setup_again(device, cloudsim)
    assert d.store_generation() >= 2  # (written: the settings, then the cloud's activation)
    assert [e["state"] for e in d.events if "storewrite" in e["loaded"]] == []


def test_setup_mode_lets_go_of_the_browsers_pages_once_made(device, cloudsim):
    # a person's browser gets the form, and for its post the page saying what
    # was done (onboard.page); setup mode holds neither once they are sent
    d, fields = blynk_device(device, cloudsim, report_heap=True)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, page = get(port, "/")
    assert status == 200 and b'action="/config"' in page
    # the form's post (ui=1): the reply is the result page
    query = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse", "ui": "1", **fields})
    status, _, page = get(port, "/config?" + query)
    assert status == 200 and b"Trying to connect" in page
    assert "page" not in d.wait_state("CONFIGURING")["loaded"]


def test_no_state_of_a_life_holds_the_blynk_profiles_check(device, cloudsim):
    # check (the token's and the app's host and ports) runs for setup mode's
    # /config and is let go of before the store writes what it returned
    d = online_then_setup_again(device, cloudsim)
    assert "CONFIGURING" in [e["state"] for e in d.events]  # (a /config with the token: checked)
    assert [e["state"] for e in d.events if "clouds.blynk_check" in e["loaded"]] == []


def test_an_application_imports_the_designs_states_and_last_error_codes_from_onboard_codes(mpy):
    # DESIGN.md section 9: Blynk.Edgent's state names and the last_error codes
    out = mpy.run("""
from onboard import codes
print(sorted((k, v) for k, v in codes.__dict__.items() if k.isupper()))
""")
    assert out.lines == [repr(sorted({
        "WAIT_CONFIG": "WAIT_CONFIG", "CONFIGURING": "CONFIGURING",
        "CONNECTING_NET": "CONNECTING_NET", "CONNECTING_CLOUD": "CONNECTING_CLOUD",
        "RUNNING": "RUNNING", "RESET_CONFIG": "RESET_CONFIG", "ERROR": "ERROR",
        "OK": 0, "ERR_CONFIG": 700, "ERR_NETWORK": 701, "ERR_CLOUD": 702, "ERR_TOKEN": 703,
        "ERR_INTERNAL": 704, "ERR_DNS": 710, "ERR_TLS": 711, "ERR_NOT_FOUND": 720,
        "ERR_WRONG_PASSWORD": 722, "ERR_NO_IP": 723}.items()))]


def test_the_codes_the_library_folds_in_are_onboard_codes_values():
    # each module holds its own private const of a state or last_error
    # (_NAME = const(value) for codes.py's NAME): one value everywhere
    lib = LIB / "onboard"
    table = consts(lib / "codes.py")
    folded = {(path.relative_to(lib).as_posix(), name[1:]): value
              for path in lib.rglob("*.py") if path.name != "codes.py"
              for name, value in consts(path).items() if name[1:] in table}
    assert {"runtime.py", "session.py", "failed.py"} <= {f for f, _ in folded}  # (found)
    assert {key: value for key, value in folded.items() if value != table[key[1]]} == {}


def consts(path):
    """A module's top-level constants: NAME = const(value) or NAME = "text"."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "const":
                value = value.args[0]
            if isinstance(value, ast.Constant):
                found[node.targets[0].id] = value.value
    return found


def test_a_simulated_device_interns_short_module_paths_wherever_the_project_is(
        device, tmp_path):
    # MicroPython interns each imported module's file path (__file__) for
    # good. A board's are short ("onboard/store.mpy"); the simulated device's
    # are as short, through the flash folder's links, not the clone's folder.
    flash = tmp_path / "device0" / "flash"
    flash.mkdir(parents=True)
    (flash / "app.py").write_text(
        "import board, onboard.store\nboard.emit({'store_file': onboard.store.__file__})\n")
    d = device()
    assert d.wait_for(lambda e: "store_file" in e, "the app's event")["store_file"] == \
        ".lib/onboard/store.py"


def test_a_device_of_built_modules_runs_the_boards_network_from_its_firmware_image(
        device, tmp_path):
    # on an ESP32 `network` is firmware (C, in flash): --mpy runs the Unix
    # board's stand-in from a ROM image likewise, the library from the flash
    flash = tmp_path / "device0" / "flash"
    flash.mkdir(parents=True)
    (flash / "app.py").write_text(
        "import board, network, onboard.store\n"
        "board.emit({'files': [network.__file__, onboard.store.__file__]})\n")
    d = device(mpy=True)
    assert d.wait_for(lambda e: "files" in e, "the app's event")["files"] == \
        ["/rom/network.mpy", ".lib/onboard/store.mpy"]


def test_importing_a_module_loads_no_package_code(mpy):
    # onboard/ and onboard/clouds/ are packages without an __init__, as
    # micropython-lib's umqtt: importing any module (the blocking HTTP and
    # MQTT clients too, whose heap is measured against requests' and
    # umqtt.simple's) runs no package code and interns no package file's
    # path, never freed (32-bit: about 150 B less heap in each state)
    run = mpy.run("""
        import onboard.log, onboard.clouds.blynk
        import onboard, onboard.clouds
        print(sorted(k for k in onboard.__dict__ if k[:2] != "__"),
              sorted(k for k in onboard.clouds.__dict__ if k[:2] != "__"),
              hasattr(onboard, "__file__"), hasattr(onboard.clouds, "__file__"))
        """)
    assert run.lines[-1] == "['clouds', 'log'] ['blynk'] False False"


def test_a_built_module_costs_no_qstr_for_its_source_name(mpy, tmp_path):
    # mpy-cross stores a source name in each .mpy; a path (onboard/store.py)
    # would be one more interned string per module, never freed. onboard build
    # gives the module's name, which importing it interned already.
    build(tmp_path / "build")
    names = [module_name(t) for t in manifest.modules()]
    run = mpy.run(f"""
        import micropython, sys
        sys.path.insert(0, {str(tmp_path / "build")!r})
        for name in {names!r}:
            __import__(name)
        micropython.qstr_info(1)
        """)
    interned = re.findall(r"^Q\((.*)\)$", run.stdout, re.M)
    assert len([q for q in interned if q.endswith(".mpy")]) >= len(names)  # loaded from build
    assert [q for q in interned if q.endswith(".py") and "snippet" not in q] == []


def test_checking_text_interns_none_of_its_characters(mpy):
    # MicroPython interns each character taken out of a str (iterating, min)
    # as a qstr, kept for good: a password's, a proof of possession's, a
    # token's, a URL's characters
    # would each cost RAM for the rest of the device's life
    run = mpy.run("""
        import micropython
        from onboard import hex64, httpmsg, wifi
        from onboard.portal import Portal
        portal = Portal(None, None, None, None, pop="ZqVkJx")
        micropython.qstr_info(1)
        print("@checks")
        wifi.check_credentials("home", "Zq#Vw%Kx!Jy;")
        wifi.check_credentials("home", "ABCDEF0123456789" * 4)
        hex64.canonical("0x9F8e7D6c5B4a3210")
        httpmsg.head("PUT", "https://Qz.example:8443/Xy?Jk=Vw", b"{}", True, {"X-Kq": "Zj"})
        portal._check_pop("ZqVkJx")  # the proof of possession, right
        portal._check_pop("WqXkQz")  # and wrong
        micropython.qstr_info(1)
        """)
    before, after = (set(re.findall(r"^Q\((.*)\)$", part, re.M))
                     for part in re.split(r"^@checks$", run.stdout, flags=re.M))
    assert [q for q in after - before if len(q) == 1] == []


def test_letting_go_of_a_module_of_a_subpackage_leaves_no_link_to_it(mpy):
    # importing onboard.clouds.blynk_online links it from onboard.clouds too:
    # that link alone would keep its code in RAM after sys.modules forgot it
    run = mpy.run("""
        import sys
        import onboard.clouds.blynk_online
        from onboard.runtime import forget

        forget("clouds.blynk_online")
        print([k for k in onboard.clouds.__dict__ if k == "blynk_online"],
              "onboard.clouds.blynk_online" in sys.modules)
        """)
    assert run.stdout.split("\n")[-2] == "[] False"


def test_letting_go_of_modules_frees_the_last_stream_asyncio_watched(mpy):
    # asyncio's poller keeps a link to the last stream it stopped watching (a
    # removed dict key keeps its value): the closed TLS socket of a session,
    # and its TLS context, stayed in RAM all through the setup mode after it
    run = mpy.run("""
        import asyncio, gc, io
        from asyncio import core
        from onboard.runtime import forget
        import onboard.store  # (the runtime always holds it: forget uses its let_go)

        class Stream(io.IOBase):  # readable at once, holding 20,000 bytes
            def __init__(self):
                self.held = bytearray(20000)
            def ioctl(self, req, arg):
                return arg & 1 if req == 3 else 0  # MP_STREAM_POLL: readable

        async def read_once():
            yield core._io_queue.queue_read(Stream())  # watched, then let go of

        async def main():
            await read_once()
            await asyncio.sleep_ms(0)
            gc.collect()
            before = gc.mem_alloc()
            forget()
            return before - gc.mem_alloc()

        # on five layouts of the heap: MicroPython's collector is conservative,
        # so a stray word that happens to equal an address in the chain can keep
        # the stream on one layout (seen once: 64 B freed). Without the fix the
        # old poller keeps it on every layout.
        pad = []
        for i in range(5):
            pad.append(bytearray(16 * i + 1))
            print(asyncio.run(main()))
        """)
    freed = [int(n) >= 20000 for n in run.lines[-5:]]  # the stream, and what it held
    assert freed.count(True) >= 4, freed
