"""onboard.improv: Improv Wi-Fi serial on a simulated device's pty, spoken as ESP Web Tools does."""

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from test_portal import get, port_of
from test_profiles import blynk_config, configure, provision

from onboard_cli.improv import (
    ERROR,
    GET_CURRENT_STATE,
    GET_DEVICE_INFO,
    GET_WIFI_NETWORKS,
    RESULT,
    RPC,
    STATE,
    WIFI_SETTINGS,
    Serial,
    packet,
    parse_strings,
    rpc,
    wifi_settings,
)


@pytest.fixture
def improv(device, tmp_path):
    d = device(serial=tmp_path / "ttyDEVICE")
    d.wait_state("WAIT_CONFIG")
    port = Serial(str(tmp_path / "ttyDEVICE"))
    yield d, port
    port.close()


def until(port, kind, command=None, timeout=10):
    """Packets up to the first of this kind (and RPC command), all returned."""
    seen = []
    while True:
        got = port.packet(timeout)
        assert got is not None, f"no packet of type {kind}; got {seen}, then {port.buf!r}"
        seen.append(got)
        if got[0] == kind and (command is None or got[1][0] == command):
            return seen


def test_device_info_names_firmware_version_chip_and_device(improv):
    _, port = improv
    port.send(rpc(GET_DEVICE_INFO))
    kind, data = until(port, RESULT, GET_DEVICE_INFO)[-1]
    name, version, chip, device_name = parse_strings(data[2:])
    assert (name, version, chip) == ("Sensor", "1.0.0", "Unix port")
    assert device_name.startswith("Acme Sensor-")


def test_wifi_networks_one_result_each_then_an_empty_one(improv):
    _, port = improv
    port.send(rpc(GET_WIFI_NETWORKS))
    results = []
    while True:
        kind, data = until(port, RESULT, GET_WIFI_NETWORKS)[-1]
        strings = parse_strings(data[2:])
        if not strings:
            break
        results.append(strings)
    assert results == [["home", "-50", "YES"], ["cafe", "-60", "NO"]]


def test_current_state_is_ready_before_provisioning(improv):
    _, port = improv
    port.send(rpc(GET_CURRENT_STATE))
    assert until(port, STATE)[-1][1] == b"\x02"


def test_wifi_settings_with_the_right_password_provision_and_give_the_url(improv):
    d, port = improv
    port.send(wifi_settings("home", "correct horse"))
    seen = until(port, RESULT, WIFI_SETTINGS)
    states = [data[0] for kind, data in seen if kind == STATE]
    assert states[-2:] == [0x03, 0x04]  # provisioning, provisioned
    (url,) = parse_strings(seen[-1][1][2:])
    assert url.startswith("http://127.0.0.1:")
    d.wait_state("CONNECTING_CLOUD")  # joined already: straight on to the cloud
    assert d.store()["wifi"]["networks"][0] == {"ssid": "home", "password": "correct horse"}


def improv_from_running(device, cloudsim, tty):
    """An online Blynk device with a serial line at tty, its setup mode opened
    by a press, then given the open network "cafe" over Improv: (the device,
    the data of Improv's RESULT)."""
    d = device(serial=tty, config=blynk_config(cloudsim))
    configure(d, blynk=provision(cloudsim)["token"])
    d.wait_state("RUNNING")
    d.press(2000)
    d.wait_state("WAIT_CONFIG")
    port = Serial(str(tty))
    try:
        port.send(wifi_settings("cafe", ""))
        return d, until(port, RESULT, WIFI_SETTINGS)[-1][1]
    finally:
        port.close()


def test_wifi_settings_on_a_device_with_working_ones_are_stored_at_once(device, cloudsim,
                                                                        tmp_path):
    # Improv joined the network itself: nothing is left to try, so the new
    # network replaces the working one at once, not on trial after setup mode
    d, _ = improv_from_running(device, cloudsim, tmp_path / "ttyDEVICE")
    stored = d.store()
    assert stored["wifi"]["networks"][0] == {"ssid": "cafe", "password": ""}
    assert "pending" not in stored.get("state", {})


def test_wifi_settings_with_a_wrong_password_is_error_3_and_stores_nothing(improv):
    d, port = improv
    port.send(wifi_settings("home", "not the password"))
    kind, data = until(port, ERROR)[-1]
    assert data == b"\x03"
    assert "wifi" not in d.store()


@pytest.mark.parametrize("ssid,password", [("home", "not the password"),
                                           ("nowhere", "correct horse")],
                         ids=["wrong password", "network not in the air"])
def test_a_join_that_failed_shows_its_password_nowhere(improv, ssid, password):
    # not stored, so the log's masking does not know it yet: in neither the
    # log, the events nor what the serial line carried
    d, port = improv
    port.send(wifi_settings(ssid, password))
    seen = until(port, ERROR)
    d.wait_logged("could not join " + ssid)
    assert password not in d.shown() + repr(seen) + repr(port.buf)


def test_bad_checksum_is_error_1(improv):
    _, port = improv
    port.send(packet(RPC, bytes((GET_DEVICE_INFO, 0)), checksum=0x00))
    assert until(port, ERROR)[-1][1] == b"\x01"


def test_trailing_newline_is_tolerated_and_no_newline_too(improv):
    _, port = improv
    port.send(rpc(GET_CURRENT_STATE) + b"\r\n", newline=True)
    assert until(port, STATE)[-1][1] == b"\x02"
    port.send(rpc(GET_CURRENT_STATE), newline=False)
    assert until(port, STATE)[-1][1] == b"\x02"


def test_unknown_command_is_error_2(improv):
    _, port = improv
    port.send(rpc(0x42))
    assert until(port, ERROR)[-1][1] == b"\x02"


def test_device_ends_every_packet_with_a_newline(improv):
    _, port = improv
    port.send(rpc(GET_CURRENT_STATE))
    until(port, STATE)
    if not port.buf:  # the newline may still be on its way
        assert select.select([port.fd], [], [], 5)[0]
        port.buf += os.read(port.fd, 1)
    assert port.buf.startswith(b"\n")


def test_state_is_ready_again_in_setup_mode_after_fresh_credentials_failed(improv):
    d, port = improv
    wrong = "/config?ssid=home&pass=not+the+password&blynk=" + "a" * 32
    status, _, _ = get(port_of(d.events[-1]), wrong)
    assert status == 200
    d.wait_state("WAIT_CONFIG", last_error=722)
    port.send(rpc(GET_CURRENT_STATE))
    assert until(port, STATE)[-1][1] == b"\x02"  # ready, never provisioned in setup mode


@pytest.mark.device_traceback
@pytest.mark.parametrize("sent", [b"\x03", b"\r\x03"], ids=["alone", "as mpremote sends it"])
def test_ctrl_c_outside_a_packet_stops_the_device_program_as_on_the_repl(improv, sent):
    # (inside a packet 0x03 is data: an RPC's type, as in every test above;
    # mpremote sends a carriage return first)
    d, port = improv
    port.send(sent, newline=False)
    assert d.proc.wait(30) is not None
    assert "KeyboardInterrupt" in d.log_path.read_text()


# `onboard improv`, as a user runs it against a device on a serial line ----------------------

def improv_command(tty, *args):
    onboard = str(Path(sys.executable).with_name("onboard"))
    return subprocess.run([onboard, "improv", "--port", str(tty), *args], capture_output=True,
                          text=True, timeout=120)


def test_the_improv_command_provisions_a_device_with_the_right_password(device, tmp_path):
    d = device(serial=tmp_path / "ttyDEVICE")
    url = d.wait_state("WAIT_CONFIG")["portal"]
    run = improv_command(tmp_path / "ttyDEVICE", "--ssid", "home", "--password", "correct horse")
    assert (run.returncode, run.stdout.splitlines()[-1]) == (0, f"provisioned: {url}")
    assert d.store()["wifi"]["networks"][0] == {"ssid": "home", "password": "correct horse"}


@pytest.mark.parametrize("password", ["not the password", "-Xy7-not-it"],
                         ids=["wrong", "starting with a dash"])
def test_the_improv_command_fails_naming_a_join_the_device_could_not_make(device, tmp_path,
                                                                         password):
    # (the device says "provisioning" before it joins: that is not success. A
    # password starting with "-" is the option's value, not another option)
    d = device(serial=tmp_path / "ttyDEVICE")
    d.wait_state("WAIT_CONFIG")
    run = improv_command(tmp_path / "ttyDEVICE", "--ssid", "home", "--password", password)
    assert (run.returncode, run.stderr) == (1, "onboard improv: device: unable to connect\n")
    assert "provisioned" not in run.stdout and password not in run.stdout + run.stderr


@pytest.mark.parametrize("option, value, most", [("--ssid", "s" * 33, 32),
                                                 ("--password", "p" * 65, 64),
                                                 ("--ssid", "\u00e9" * 17, 32)])
def test_the_improv_command_refuses_a_value_too_long_for_the_device_in_one_line(
        tmp_path, option, value, most):
    run = improv_command(tmp_path / "no-device", "--ssid", "home", option, value)
    assert (run.returncode, run.stderr) == (
        1, f"onboard improv: {option}: at most {most} bytes (UTF-8)\n")
