"""The AP-mode portal: Blynk.Edgent's local API, captive redirects,
percent-decoding, hostile input and proof of possession."""

import json
import os
import queue
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from conftest import MICROPYPATH, micropython_binary

from onboard_cli.device import device_mac
from onboard_cli.ports import free_port

TOKEN = "abcdefghijklmnopqrstuvwxyz012345"




def http(port, raw, timeout=10):
    """Send raw bytes, return (status, headers, body) or None when closed without a reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        try:
            while True:
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except (ConnectionResetError, BrokenPipeError):
            pass
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def port_of(event):
    """The portal's port from a device event ({"portal": "http://127.0.0.1:P/"})."""
    return int(event["portal"].rsplit(":", 1)[1].strip("/"))


def get(port, path, host="127.0.0.1"):
    return http(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())


def post(port, path, body, ctype="application/x-www-form-urlencoded"):
    body = body.encode() if isinstance(body, str) else body
    return http(port, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


class PortalProcess:
    def __init__(self, pop=None, captive=True):
        self.port = free_port()
        args = [micropython_binary(), str(Path(__file__).parent / "mpy" / "portal_server.py"),
                str(self.port), pop or ""] + ([] if captive else ["app-only"])
        env = dict(os.environ, MICROPYPATH=":".join(MICROPYPATH))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line(10) == "@ready"

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout=5):
        return self.lines.get(timeout=timeout)

    def printed(self):
        """Every line the server printed before this call: a board_info
        request prints a mark, and the lines are read up to it."""
        assert get(self.port, "/board_info.json")[0] == 200
        out = []
        while True:
            line = self.lines.get(timeout=10)
            if line == "@info":
                return out
            out.append(line)

    def applied(self):
        """Everything apply() received before this call."""
        return [json.loads(x[9:]) for x in self.printed() if x.startswith("@applied ")]

    def advance(self, ms):
        """Move the portal's clock ms forward (its ticks, as a long wait would)."""
        self.proc.stdin.write(f"advance {ms}\n")
        self.proc.stdin.flush()
        while self.next_line(10) != "@advanced":
            pass

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def portal():
    p = PortalProcess()
    yield p
    p.stop()


def ok_reply(reply):
    status, headers, body = reply
    return (status, headers["content-type"], headers["connection"], json.loads(body)) == (
        200, "application/json", "close", {"status": "ok", "msg": "Trying to connect..."})


# The Blynk app's flow, on a whole simulated device ------------------------------------

def test_board_info_names_the_stations_mac_and_the_access_points_bssid(device):
    # two addresses, as on an ESP32: the access point's is the station's plus one
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    info = json.loads(get(port, "/board_info.json")[2])
    mac = device_mac(d.flash)
    ap = mac[:-2] + "%02x" % ((int(mac[-2:], 16) + 1) & 0xFF)
    assert (info["mac"].lower(), info["bssid"].lower()) == (mac, ap)


def test_blynk_app_flow_gets_documented_replies_and_credentials_land_in_the_store(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/board_info.json")
    info = json.loads(body)
    assert status == 200
    assert {"board", "tmpl_id", "fw_type", "fw_ver", "ssid", "bssid", "mac", "last_error",
            "wifi_scan", "static_ip", "vendor", "uid"} <= set(info)
    assert info["ssid"].startswith("Acme Sensor-") and len(info["ssid"].encode()) <= 32
    assert (info["wifi_scan"], info["static_ip"], info["last_error"]) == (True, True, 0)
    status, _, body = get(port, "/wifi_scan.json")
    scan = json.loads(body)
    assert [n["ssid"] for n in scan] == ["home", "cafe"]  # de-duplicated, strongest first
    assert scan[0] == {"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -50,
                       "sec": "WPA2", "ch": 6}
    query = urllib.parse.urlencode({"ssid": "home", "pass": "correct horse", "blynk": TOKEN,
                                    "host": "127.0.0.1"})
    assert ok_reply(get(port, "/config?" + query))
    stored = d.store()
    assert stored["wifi"]["networks"][0] == {"ssid": "home", "password": "correct horse"}
    assert stored["cloud"]["token"] == TOKEN and stored["cloud"]["host"] == "127.0.0.1"
    d.wait_state("CONNECTING_NET")
    d.wait_state("CONNECTING_CLOUD")


def test_wrong_wifi_password_shows_722_in_board_info(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    query = urllib.parse.urlencode({"ssid": "home", "pass": "wrong password", "blynk": TOKEN})
    assert ok_reply(get(port, "/config?" + query))
    d.wait_state("WAIT_CONFIG", last_error=722)
    assert json.loads(get(port, "/board_info.json")[2])["last_error"] == 722


@pytest.mark.parametrize("password, authmode", [("ap-5ecret-123", 3), ("", 0)],
                         ids=["wpa2", "open"])
def test_the_access_point_is_wpa2_with_the_configs_ap_password_and_open_without(
        device, password, authmode):
    # as a phone scanning the air sees it (the stand-in radio's own config):
    # the name board_info gives, WPA2-PSK (3) with a key, open (0) without
    d = device(config={"portal": {"ap_password": password}}, air=True)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    ssid = json.loads(get(port, "/board_info.json")[2])["ssid"]
    assert d.air_ap() == (authmode, ssid)


def test_the_access_point_is_gone_once_setup_mode_ends(device):
    d = device(air=True)
    port = port_of(d.wait_state("WAIT_CONFIG"))
    assert d.air_ap() is not None
    assert ok_reply(get(port, "/config?ssid=home&pass=correct+horse&blynk=" + TOKEN))
    d.wait_state("CONNECTING_NET")
    assert d.air_ap() is None


def test_board_info_never_carries_a_secret(device):
    d = device(config={"portal": {"pop": "pop-5ecret-123", "ap_password": "ap-5ecret-123"}})
    port = port_of(d.wait_state("WAIT_CONFIG"))
    body = get(port, "/board_info.json")[2].decode()
    assert "5ecret" not in body and json.loads(body)["last_error"] == 0


def test_the_portals_pop_and_ap_password_show_in_neither_the_log_nor_the_events(device):
    # the config's secrets, which the log's masking does not know (only the
    # store's): through setup mode, a wrong and then the right pop
    d = device(config={"portal": {"pop": "pop-5ecret-123", "ap_password": "ap-5ecret-123"}})
    port = port_of(d.wait_state("WAIT_CONFIG"))
    for pop in ("pop-5ecret-124", "pop-5ecret-123"):
        get(port, "/config?ssid=home&pass=correct+horse&pop=" + pop + "&blynk=" + TOKEN)
    d.wait_state("CONNECTING_NET")
    seen = d.shown()
    assert "portal: serving" in seen  # (the log was written)
    assert "5ecret" not in seen


# Percent-decoding -------------------------------------------------------------------------

PASSWORDS = ["p&ss#wo%rd+=?", "with spaces  here", "100%+&==??##", "a+b%20c&d=e"]
_SSID = "Café ☕ Ünïcødé–"
SSID_32 = _SSID + "x" * (32 - len(_SSID.encode()))  # exactly 32 bytes of UTF-8, the limit


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("how", ["query", "form", "json", "json; charset=utf-8"])
def test_passwords_and_utf8_ssids_round_trip_exactly(portal, how, password):
    fields = {"ssid": SSID_32, "pass": password, "blynk": TOKEN}
    if how == "query":
        reply = get(portal.port, "/config?" + urllib.parse.urlencode(fields))
    elif how == "form":
        reply = post(portal.port, "/config", urllib.parse.urlencode(fields))
    else:  # (a JSON type with a parameter is JSON too)
        reply = post(portal.port, "/config", json.dumps(fields), "application/" + how)
    assert ok_reply(reply)
    assert portal.applied() == [fields]


def test_a_field_name_is_percent_decoded_and_an_equals_sign_in_a_value_kept(portal):
    assert ok_reply(get(portal.port, "/config?%73sid=home&pass=abc=defgh1&blynk=" + TOKEN))
    assert portal.applied() == [{"ssid": "home", "pass": "abc=defgh1", "blynk": TOKEN}]


def test_percent_encoded_space_and_plus_differ(portal):
    assert ok_reply(get(portal.port, "/config?ssid=a%2Bb+c&pass=x%20y%2B%2b+z&blynk=" + TOKEN))
    assert portal.applied() == [{"ssid": "a+b c", "pass": "x y++ z", "blynk": TOKEN}]


@pytest.mark.parametrize("query", ["ssid=%E2%82&pass=x", "ssid=%zz", "ssid=abc%4"])
def test_broken_percent_encoding_is_400_naming_the_field(portal, query):
    status, _, body = get(portal.port, "/config?" + query)
    assert status == 400
    assert json.loads(body)["msg"].startswith("ssid: ")
    assert portal.applied() == []


BAD_ESCAPES = ["%+5", "% 5", "%_1", "%-1", "%0x", "%5", "%"]  # int(x, 16) takes the first five


@pytest.mark.parametrize("escape", BAD_ESCAPES)
def test_percent_needs_exactly_two_hex_digits_else_400_naming_the_field(portal, escape):
    body = f"ssid=home&pass=correct+horse{escape}&blynk={TOKEN}"
    status, _, reply = post(portal.port, "/config", body)
    assert (status, json.loads(reply)["msg"]) == (400, "pass: bad percent-encoding")
    assert portal.applied() == []


@pytest.mark.parametrize("escape", ["%+5", "% 5", "%_1"])
def test_bad_percent_escape_stores_nothing_on_the_device(device, escape):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    body = f"ssid=home{escape}&pass=correct+horse&blynk={TOKEN}"  # "home\x05" were a valid SSID
    status, _, reply = post(port, "/config", body)
    assert (status, json.loads(reply)["msg"]) == (400, "ssid: bad percent-encoding")
    assert ok_reply(get(port, "/config?ssid=cafe&pass=&blynk=" + TOKEN))
    # the flash read back through Store: only the good request landed
    assert d.store()["wifi"]["networks"] == [{"ssid": "cafe", "password": ""}]


def test_ssid_manual_overrides_ssid(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    assert ok_reply(get(port, "/config?ssid=home&ssidManual=hidden-net&pass=&blynk=" + TOKEN))
    assert d.store()["wifi"]["networks"][0]["ssid"] == "hidden-net"


# JSON bodies ------------------------------------------------------------------------------

def post_json(port, doc):
    return post(port, "/config", json.dumps(doc), "application/json")


def test_json_null_means_the_field_is_absent(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    assert ok_reply(post_json(port, {"ssid": "home", "pass": "correct horse", "blynk": TOKEN,
                                     "host": None, "port": None}))
    cloud = d.store()["cloud"]
    assert cloud["token"] == TOKEN
    assert "host" not in cloud and "port" not in cloud


def test_json_null_removes_a_field_the_query_string_gave(portal):
    assert ok_reply(post(portal.port, "/config?host=example", json.dumps(
        {"ssid": "home", "pass": "correct horse", "host": None}), "application/json"))
    assert portal.applied() == [{"ssid": "home", "pass": "correct horse"}]


def test_json_number_is_taken_as_its_text(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    assert ok_reply(post_json(port, {"ssid": "home", "pass": "correct horse", "blynk": TOKEN,
                                     "host": "127.0.0.1", "port": 8442}))
    cloud = d.store()["cloud"]
    assert cloud["app_port"] == 8442 and "port" not in cloud  # the app's port, not MQTT's


def test_json_fractional_number_is_taken_as_its_text(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    assert ok_reply(post_json(port, {"ssid": "home", "pass": 12345678.5, "blynk": TOKEN}))
    assert d.store()["wifi"]["networks"][0]["password"] == "12345678.5"


@pytest.mark.parametrize("field,value", [("ssid", True), ("pass", False),
                                         ("pass", {"a": "bcdefghij"}), ("ssid", ["home"])])
def test_json_boolean_list_or_object_is_400_naming_the_field_and_nothing_stored(
        device, field, value):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    doc = {"ssid": "home", "pass": "correct horse", "blynk": TOKEN, field: value}
    status, _, body = post_json(port, doc)
    assert (status, json.loads(body)["msg"]) == (400, f"{field}: must be text or a number")
    assert "wifi" not in d.store() and "cloud" not in d.store()


def test_invalid_field_is_edgents_500_with_its_message_and_nothing_stored(portal):
    status, _, body = get(portal.port, "/config?ssid=refuse-me&pass=x")
    assert status == 500
    assert json.loads(body) == {"status": "error", "msg": "ssid: refused by the test"}
    assert portal.applied() == []


# Hostile input ----------------------------------------------------------------------------

HOSTILE = {
    "no-crlf": b"GET /config?ssid=x HTTP/1.1 Host: 127.0.0.1 " + b"A" * 3000,
    "64k-header": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
    "1mb-body": b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1048576\r\n\r\n"
                + b"ssid=" + b"x" * 1048571,
    "lying-length": b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 900\r\n\r\n"
                    b"ssid=home&pass=correct+horse",
    "invalid-utf8": b"GET /config?ssid=\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "invalid-utf8-body": b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9\r\n\r\n"
                         b"ssid=\xc3\x28ab",
    "unknown-method": b"BREW /config HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "not-http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "chunked": b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nssid=\r\n0\r\n\r\n",
    "negative-length": b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
    "json-array": b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 2\r\n\r\n[]",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_request_gets_4xx_or_is_closed_and_nothing_is_stored(portal, name):
    try:
        reply = http(portal.port, HOSTILE[name], timeout=10)
    except (ConnectionResetError, BrokenPipeError):
        reply = None
    assert reply is None or 400 <= reply[0] < 500, reply
    assert ok_reply(get(portal.port, "/config?ssid=home&pass=correct+horse&blynk=" + TOKEN))
    assert portal.applied() == [{"ssid": "home", "pass": "correct horse", "blynk": TOKEN}]


def test_a_request_without_a_host_header_is_served(portal):
    # (HTTP/1.0 has none: taken as for the portal itself, not redirected to it)
    status, headers, body = http(portal.port, b"GET / HTTP/1.0\r\n\r\n", timeout=10)
    assert status == 200 and headers["content-type"].startswith("text/html")


def test_a_chunked_body_is_411_length_required(portal):
    # the portal reads a body by its Content-Length only, and says so
    assert http(portal.port, HOSTILE["chunked"], timeout=10)[0] == 411


def test_half_a_request_then_silence_is_closed_within_the_request_limit(portal):
    with socket.create_connection(("127.0.0.1", portal.port), timeout=15) as s:
        s.sendall(b"GET /config?ssid=x HTTP/1.1\r\nHost: 127.")
        start = time.monotonic()
        data = s.recv(4096)
        waited = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 ")
    assert waited <= 6.0
    assert ok_reply(get(portal.port, "/config?ssid=home&pass=&blynk=" + TOKEN))


def test_settings_applied_slower_than_the_request_limit_are_answered_as_applied(portal):
    # the limit is on receiving the request: what it asked for is done, and said so
    assert ok_reply(get(portal.port, "/config?ssid=slow-flash&pass=&blynk=" + TOKEN))
    assert portal.applied() == [{"ssid": "slow-flash", "pass": "", "blynk": TOKEN}]


def test_eight_clients_at_once_four_are_served_the_rest_refused(portal):
    silent = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", portal.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\n")  # incomplete: holds a slot
        silent.append(s)
    replies = []
    for s in silent:
        try:
            replies.append(s.recv(4096).split(b" ")[1])
        except (ConnectionResetError, IndexError):
            replies.append(b"closed")
        s.close()
    assert replies.count(b"429") == 4
    assert replies.count(b"408") == 4
    # the slots free once the portal has closed its side of those connections
    until = time.monotonic() + 10
    while (r := get(portal.port, "/config?ssid=home&pass=&blynk=" + TOKEN))[0] == 429 \
            and time.monotonic() < until:
        time.sleep(0.05)
    assert ok_reply(r)


# Captive portal --------------------------------------------------------------------------

# (each probe on the portal's own host too: its path alone is redirected)
@pytest.mark.parametrize("path,host", [("/generate_204", "127.0.0.1"),
                                       ("/hotspot-detect.html", "captive.apple.com"),
                                       ("/hotspot-detect.html", "127.0.0.1"),
                                       ("/connecttest.txt", "www.msftconnecttest.com"),
                                       ("/connecttest.txt", "127.0.0.1"),
                                       ("/ncsi.txt", "127.0.0.1"),
                                       ("/anything", "example.com")])
def test_captive_probes_and_foreign_hosts_get_302_to_the_portal_root(portal, path, host):
    status, headers, body = get(portal.port, path, host=host)
    assert status == 302
    assert headers["location"] == f"http://127.0.0.1:{portal.port}/"
    assert body  # never an empty reply


@pytest.mark.parametrize("path", ["/board_info.json", "/wifi_scan.json"])
@pytest.mark.parametrize("host", ["blynk.setup", "192.168.4.1", "example.com"])
def test_api_paths_answer_json_whatever_the_host(portal, path, host):
    status, headers, body = get(portal.port, path, host=host)
    assert status == 200 and headers["content-type"] == "application/json"
    json.loads(body)


@pytest.mark.parametrize("host", ["example.com", "192.168.4.1"])
def test_config_reset_and_reboot_act_whatever_the_host(portal, host):
    # (an app that addresses the device by another name or address than the
    # portal's own: the API answers it, as Edgent's server does any Host)
    assert ok_reply(get(portal.port, "/config?ssid=home&pass=&blynk=" + TOKEN, host=host))
    assert get(portal.port, "/reset", host=host)[0] == 200
    assert get(portal.port, "/reboot", host=host)[0] == 200
    printed = portal.printed()
    if "@reboot" not in printed:  # (a reboot comes once its reply has gone out)
        printed.append(portal.next_line(10))
    assert [line.split()[0] for line in printed] == ["@applied", "@reset", "@reboot"]


def test_config_addressed_to_blynk_setup_is_applied_not_redirected(portal):
    assert ok_reply(get(portal.port, "/config?ssid=home&pass=correct+horse&blynk=" + TOKEN,
                        host="blynk.setup"))
    assert portal.applied() == [{"ssid": "home", "pass": "correct horse", "blynk": TOKEN}]


def test_the_page_on_blynk_setup_is_served_not_redirected(portal):
    status, _, body = get(portal.port, "/", host="blynk.setup")
    assert status == 200 and b"<form" in body


@pytest.fixture
def app_only_portal():
    p = PortalProcess(captive=False)
    yield p
    p.stop()


@pytest.mark.parametrize("path,host", [("/generate_204", "127.0.0.1"),
                                       ("/anything", "example.com")])
def test_without_captive_mode_probes_and_foreign_hosts_are_not_redirected(app_only_portal,
                                                                          path, host):
    status, _, _ = get(app_only_portal.port, path, host=host)
    assert status == 404


def test_without_captive_mode_the_page_is_served_on_any_host(app_only_portal):
    status, _, body = get(app_only_portal.port, "/", host="example.com")
    assert status == 200 and b"<form" in body


def test_save_1_answers_configuration_saved(portal):
    status, _, body = get(portal.port, "/config?ssid=home&pass=correct+horse&save=1&blynk=" + TOKEN)
    assert status == 200
    assert json.loads(body) == {"status": "ok", "msg": "Configuration saved"}


def test_an_interface_other_than_wifi_is_refused_naming_if(device):
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/config?if=eth&ssid=home&pass=correct+horse&blynk=" + TOKEN)
    assert (status, json.loads(body)["msg"]) == (500, "if: only wifi")
    assert d.store() == {}


def head(port, path, host="127.0.0.1"):
    return http(port, f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())


@pytest.mark.parametrize("path,host", [("/", "127.0.0.1"), ("/board_info.json", "127.0.0.1"),
                                       ("/wifi_scan.json", "127.0.0.1"),
                                       ("/generate_204", "127.0.0.1"),
                                       ("/anything", "example.com"), ("/nothing", "127.0.0.1")])
def test_head_gets_the_status_and_headers_of_get_and_no_body_bytes(portal, path, host):
    got = get(portal.port, path, host)
    status, headers, body = head(portal.port, path, host)  # every byte until the close
    assert (status, headers) == got[:2]
    assert int(headers["content-length"]) == len(got[2]) > 0
    assert body == b""


@pytest.mark.parametrize("path", ["/config?ssid=home&pass=&blynk=" + TOKEN, "/reset"])
def test_head_on_config_or_reset_is_405_changes_nothing_and_has_no_body(portal, path):
    status, headers, body = head(portal.port, path)
    assert (status, headers["allow"], body) == (405, "GET, POST", b"")
    assert portal.printed() == []  # neither "@applied" nor "@reset"


def test_config_page_works_without_javascript_and_escapes_ssids(portal):
    status, headers, body = get(portal.port, "/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/config">' in page and "<script" not in page
    # a network's name that closes the attribute it is put in, then opens a script
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert len(body) < 2048


def test_the_forms_result_page_links_back_to_the_form_only_when_the_post_failed(portal):
    ok = get(portal.port, "/config?ui=1&ssid=home&pass=&blynk=" + TOKEN)
    failed = get(portal.port, "/config?ui=1&ssid=refuse-me&pass=x")  # (the stand-in refuses it)
    assert ok[0] == 200 and "Trying to connect" in ok[2].decode()
    assert failed[0] == 500 and failed[1]["content-type"].startswith("text/html")
    back = '<a href="/">Back</a>'
    assert back not in ok[2].decode() and back in failed[2].decode()


def test_reset_replies_as_blynk_does(portal):
    status, _, body = get(portal.port, "/reset")
    assert (status, json.loads(body)) == (200, {"status": "ok", "msg": "Configuration reset"})


def test_reset_forgets_the_stored_configuration(device, mpy, tmp_path):
    # a device that has a cloud token and an enrolment but no Wi-Fi: it boots into setup mode
    flash = tmp_path / "device0" / "flash"  # where device() keeps its first device's flash
    flash.mkdir(parents=True)
    mpy.run(f"""
        from onboard.store import Store
        s = Store({str(flash / "onboard.json")!r})
        s.put("cloud", token={TOKEN!r})
        s.put("enrol", plan_id="plan-1", token="0x0000000000000001")
    """)
    d = device()
    port = port_of(d.wait_state("WAIT_CONFIG"))
    assert {"cloud", "enrol"} <= set(d.store())
    assert get(port, "/reset")[0] == 200
    stored = d.store()
    assert "cloud" not in stored and "enrol" not in stored


# Proof of possession --------------------------------------------------------------------------

@pytest.fixture
def pop_portal():
    p = PortalProcess(pop="pop-1234")
    yield p
    p.stop()


@pytest.mark.parametrize("path", ["/config", "/reset"])
# missing, wrong, the right one's start, the right one and more, empty
@pytest.mark.parametrize("pop", [None, "wrong", "pop-", "pop-12345", ""])
def test_config_and_reset_need_the_proof_of_possession(pop_portal, path, pop):
    query = "?ssid=home&pass=&blynk=" + TOKEN + (f"&pop={pop}" if pop is not None else "")
    status, _, body = get(pop_portal.port, path + query)
    assert (status, json.loads(body)["msg"]) == (403, "pop: missing or wrong")
    assert pop_portal.applied() == []


def test_the_form_asks_for_the_proof_of_possession_as_a_password_only_when_one_is_set(
        pop_portal, portal):
    # (a person with a browser could not configure the device otherwise)
    field = '<input name="pop" type="password"'
    assert field in get(pop_portal.port, "/")[2].decode()
    assert 'name="pop"' not in get(portal.port, "/")[2].decode()


def test_right_pop_is_accepted(pop_portal):
    assert ok_reply(get(pop_portal.port, "/config?ssid=home&pass=&pop=pop-1234&blynk=" + TOKEN))


def test_five_failures_lock_config_and_reset_for_60_seconds(pop_portal):
    for _ in range(5):
        assert get(pop_portal.port, "/config?ssid=home&pop=guess")[0] == 403
    for path in ("/config", "/reset"):
        query = "?ssid=home&pass=&pop=pop-1234&blynk=" + TOKEN
        status, _, body = get(pop_portal.port, path + query)
        assert (status, json.loads(body)["msg"]) == (403, "pop: locked, try again in 60 s")
    assert pop_portal.applied() == []


def lock(portal):
    for _ in range(5):
        assert get(portal.port, "/config?ssid=home&pop=guess")[0] == 403


def config_with_right_pop(portal):
    status, _, body = get(portal.port, "/config?ssid=home&pass=&pop=pop-1234&blynk=" + TOKEN)
    return status, json.loads(body)["msg"]


def test_the_lock_still_holds_one_second_before_its_60_seconds_end(pop_portal):
    lock(pop_portal)
    pop_portal.advance(59_000)
    assert config_with_right_pop(pop_portal) == (403, "pop: locked, try again in 1 s")
    assert pop_portal.applied() == []


def test_after_60_seconds_the_right_pop_is_accepted_again(pop_portal):
    lock(pop_portal)
    pop_portal.advance(60_000)
    assert config_with_right_pop(pop_portal) == (200, "Trying to connect...")
    assert [f["ssid"] for f in pop_portal.applied()] == ["home"]


def test_after_the_lock_ends_a_wrong_pop_does_not_lock_again_at_once(pop_portal):
    # the count starts over: one wrong guess after the lock is one failure, not the sixth
    lock(pop_portal)
    pop_portal.advance(60_000)
    assert get(pop_portal.port, "/config?ssid=home&pop=guess")[0] == 403
    assert config_with_right_pop(pop_portal) == (200, "Trying to connect...")


# The host command ---------------------------------------------------------------------

def onboard(*args):
    import sys
    cmd = [str(Path(sys.executable).with_name("onboard")), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_portal_configure_command_does_what_a_phone_app_does(device):
    d = device()
    url = d.wait_state("WAIT_CONFIG")["portal"]
    run = onboard("portal", "configure", "--url", url, "--ssid", "home", "--password",
                  "correct horse", "--token", TOKEN)
    assert run.returncode == 0, run.stderr
    assert "Trying to connect..." in run.stdout
    assert d.store()["cloud"]["token"] == TOKEN


def test_portal_configure_takes_a_token_that_starts_with_a_dash(device):
    # one Blynk token in 64 does, and argparse would take it for an option
    d = device()
    url = d.wait_state("WAIT_CONFIG")["portal"]
    token = "-" + TOKEN[1:]
    run = onboard("portal", "configure", "--url", url, "--ssid", "home", "--password",
                  "correct horse", "--token", token)
    assert run.returncode == 0, run.stderr
    assert d.store()["cloud"]["token"] == token


def test_portal_configure_reports_a_refusal_in_one_line(device):
    d = device()
    url = d.wait_state("WAIT_CONFIG")["portal"]
    run = onboard("portal", "configure", "--url", url, "--ssid", "home", "--token", "short")
    assert run.returncode == 1
    assert run.stderr.strip() == ("onboard portal: device refused: "
                                  "blynk: must be 32 characters of A-Z a-z 0-9 - _")


def test_portal_configure_sends_each_extra_field_to_config(portal):
    run = onboard("portal", "configure", "--url", f"http://127.0.0.1:{portal.port}/",
                  "--ssid", "home", "--password", "correct horse",
                  "--field", "blynk=" + TOKEN, "--field", "save=1")
    assert (run.returncode, run.stdout.splitlines()[-1]) == (0, "Configuration saved")
    assert portal.printed() == []  # (up to the command's own board_info request)
    assert portal.applied() == [{"ssid": "home", "pass": "correct horse", "blynk": TOKEN,
                                 "save": "1"}]
