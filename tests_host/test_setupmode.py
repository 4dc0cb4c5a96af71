"""Setup mode on a whole simulated device, at its edges (found by the
mutation check, issue 13): the access point's name, captive mode by
default, and what is left once setup mode ends."""

import json
import socket
import urllib.parse

from test_dns import query
from test_portal import TOKEN, get, ok_reply, port_of


def test_the_access_point_is_named_after_the_last_two_bytes_of_the_mac(device):
    d = device()
    info = json.loads(get(port_of(d.wait_state("WAIT_CONFIG")), "/board_info.json")[2])
    assert info["ssid"] == "Acme Sensor-" + info["mac"].replace(":", "")[-4:].upper()


def test_the_portal_is_captive_unless_the_config_says_otherwise(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, headers, _ = get(port, "/generate_204", host="connectivitycheck.gstatic.com")
    assert (status, headers["location"]) == (302, f"http://127.0.0.1:{port}/")


def configured(device):
    """A device whose setup mode took settings and ended: (device, the WAIT_CONFIG event)."""
    d = device()
    event = d.wait_state("WAIT_CONFIG")
    query_ = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse", "blynk": TOKEN})
    assert ok_reply(get(port_of(event), "/config?" + query_))
    d.wait_state("CONNECTING_CLOUD")
    return d, event


def test_once_setup_mode_ends_the_events_name_no_portal(device):
    d, event = configured(device)
    after = [e["portal"] for e in d.events[d.events.index(event) + 1:]]
    assert after and set(after) == {None}


def test_once_setup_mode_ends_its_captive_dns_answers_no_more(device):
    d, event = configured(device)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.connect(("127.0.0.1", event["dns"]))
        s.send(query(0x5E71, "blynk.setup"))
        try:
            reply = s.recv(512)
        except ConnectionRefusedError:  # the port is closed: loopback says so at once
            reply = None
    assert reply is None


def test_a_password_the_radio_cannot_take_is_refused_naming_the_portals_pass_field(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?ssid=home&pass=sixchr&blynk=" + TOKEN)
    assert (status, json.loads(body)["msg"]) == (
        500, "pass: must be 8-63 characters, 64 hex digits, a WEP key, or empty")
    assert d.store() == {}


def test_an_ssid_too_long_is_refused_naming_ssid(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?ssid=" + "x" * 33 + "&pass=&blynk=" + TOKEN)
    assert (status, json.loads(body)["msg"]) == (500, "ssid: must be 1-32 bytes of text")
    assert d.store() == {}
