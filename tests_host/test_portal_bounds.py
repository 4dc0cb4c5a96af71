"""The portal's exact bounds and replies, each at its edge (found by the
mutation check, issue 13): what one byte more or less changes."""

import json
import socket

import pytest
from test_portal import TOKEN, PortalProcess, http, ok_reply


@pytest.fixture
def portal():
    p = PortalProcess()
    yield p
    p.stop()


@pytest.fixture
def pop_portal():
    p = PortalProcess(pop="pop-1234")
    yield p
    p.stop()


def post_sized(port, size):
    """POST /config with a form body of exactly size bytes (padding in a field apply() keeps)."""
    body = f"ssid=home&pass=&blynk={TOKEN}&pad=".encode()
    body += b"x" * (size - len(body))
    return http(port, b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % size + body)


def test_a_body_of_exactly_1024_bytes_is_applied(portal):
    assert ok_reply(post_sized(portal.port, 1024))
    assert [f["ssid"] for f in portal.applied()] == ["home"]


def test_a_body_of_1025_bytes_is_413_naming_the_1024_byte_limit_and_nothing_applied(portal):
    status, _, body = post_sized(portal.port, 1025)
    assert (status, json.loads(body)["msg"]) == (413, "body over 1024 bytes")
    assert portal.applied() == []


def test_the_portal_counts_every_request_it_served_from_the_first(portal):
    for path in ("/", "/wifi_scan.json", "/nothing"):
        http(portal.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    reply = http(portal.port, b"GET /board_info.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert json.loads(reply[2])["served"] == 4  # the three, then this one


def get_with_head(size):
    """GET /board_info.json whose head, blank line included, is size bytes."""
    start = b"GET /board_info.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
    return start + b"x" * (size - len(start) - 4) + b"\r\n\r\n"


def test_a_head_of_exactly_2048_bytes_is_served(portal):
    assert len(get_with_head(2048)) == 2048
    assert http(portal.port, get_with_head(2048))[0] == 200


def test_a_head_of_2049_bytes_is_431_naming_the_2048_byte_limit(portal):
    status, _, body = http(portal.port, get_with_head(2049))
    assert (status, json.loads(body)["msg"]) == (431, "request head over 2048 bytes")


def test_a_request_with_bare_lf_line_ends_has_its_body_read_whole(portal):
    body = f"ssid=home&pass=&blynk={TOKEN}".encode()
    head = b"POST /config HTTP/1.1\nHost: 127.0.0.1\nContent-Length: %d\n\n" % len(body)
    assert ok_reply(http(portal.port, head + body))
    assert portal.applied() == [{"ssid": "home", "pass": "", "blynk": TOKEN}]


def test_bytes_past_the_content_length_are_not_part_of_the_body(portal):
    # sent in the same packet: only Content-Length says where the body ends
    body = f"ssid=home&pass=&blynk={TOKEN}".encode()
    head = b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert ok_reply(http(portal.port, head + body + b"&ssidManual=stranger"))
    assert portal.applied() == [{"ssid": "home", "pass": "", "blynk": TOKEN}]


def test_a_client_that_stops_sending_mid_head_gets_400_incomplete_request(portal):
    with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as s:
        s.sendall(b"GET /config?ssid=home HTTP/1.1\r\nHost: 127.")
        s.shutdown(socket.SHUT_WR)  # its side ends: no more bytes will come
        data = b""
        while part := s.recv(4096):
            data += part
    head, _, body = data.partition(b"\r\n\r\n")
    assert (head.split()[1], json.loads(body)["msg"]) == (b"400", "incomplete request")


def test_a_request_line_of_two_words_is_400_malformed_request(portal):
    status, _, body = http(portal.port, b"GET /config?ssid=home\r\nHost: 127.0.0.1\r\n\r\n")
    assert (status, json.loads(body)["msg"]) == (400, "malformed request")
    assert portal.applied() == []


def test_an_unknown_method_is_405_method_not_allowed(portal):
    status, _, body = http(portal.port,
                           b"PUT /config?ssid=home HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (status, json.loads(body)["msg"]) == (405, "method not allowed")
    assert portal.applied() == []


def test_a_content_length_that_is_not_a_number_is_413_as_one_out_of_range(portal):
    status, _, body = http(portal.port, b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Length: 12abc\r\n\r\nssid=home")
    assert (status, json.loads(body)["msg"]) == (413, "body over 1024 bytes")
    assert portal.applied() == []


def test_each_request_starts_the_portals_idle_time_afresh(portal):
    portal.advance(60_000)  # a minute with no request, on the portal's clock
    reply = http(portal.port, b"GET /board_info.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert json.loads(reply[2])["idle_ms"] < 60_000  # counted from this request


def test_reboot_answers_rebooting(portal):
    status, _, body = http(portal.port, b"GET /reboot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (status, json.loads(body)) == (200, {"status": "ok", "msg": "Rebooting"})


def test_the_forms_success_page_has_no_back_link_and_its_error_page_has_one(portal):
    ok = http(portal.port, f"GET /config?ui=1&ssid=home&pass=&blynk={TOKEN} HTTP/1.1\r\n"
              "Host: 127.0.0.1\r\n\r\n".encode())
    refused = http(portal.port, b"GET /config?ui=1&ssid=refuse-me&pass= HTTP/1.1\r\n"
                   b"Host: 127.0.0.1\r\n\r\n")
    assert (ok[0], b"Trying to connect..." in ok[2]) == (200, True)
    assert b'href="/">Back' not in ok[2]
    assert (refused[0], b'href="/">Back' in refused[2]) == (500, True)


def pop_config(portal, pop):
    status, _, body = http(portal.port, f"GET /config?ssid=home&pass=&blynk={TOKEN}&pop={pop} "
                           "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return status, json.loads(body)["msg"]


def test_after_the_lock_ends_four_wrong_pops_do_not_lock_again(pop_portal):
    for _ in range(5):
        pop_config(pop_portal, "guess")
    pop_portal.advance(60_000)
    assert [pop_config(pop_portal, "guess")[0] for _ in range(4)] == [403] * 4
    assert pop_config(pop_portal, "pop-1234") == (200, "Trying to connect...")


def test_the_right_pop_starts_the_count_of_failures_afresh(pop_portal):
    for _ in range(4):
        pop_config(pop_portal, "guess")
    assert pop_config(pop_portal, "pop-1234")[0] == 200
    for _ in range(4):
        pop_config(pop_portal, "guess")
    assert pop_config(pop_portal, "pop-1234") == (200, "Trying to connect...")


def test_the_page_asks_for_the_proof_of_possession_only_when_one_is_set(portal, pop_portal):
    def page(p):
        return http(p.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[2]

    assert (b'name="pop"' in page(portal), b'name="pop"' in page(pop_portal)) == (False, True)


def test_a_colon_is_no_hex_digit_of_a_percent_escape(portal):
    status, _, body = http(portal.port, b"GET /config?ssid=home%0:&pass= HTTP/1.1\r\n"
                           b"Host: 127.0.0.1\r\n\r\n")
    assert (status, json.loads(body)["msg"]) == (400, "ssid: bad percent-encoding")
    assert portal.applied() == []


def test_the_portals_url_names_its_port_unless_it_is_80(mpy):
    run = mpy.run("""
        from onboard.portal import Portal
        for port in (80, 8080):
            print(Portal(None, None, None, None, host="192.168.4.1", port=port).root)
    """)
    assert run.stdout.split() == ["http://192.168.4.1/", "http://192.168.4.1:8080/"]


def test_a_request_that_fails_unexpectedly_is_400_bad_request_and_the_portal_serves_on(portal):
    status, _, body = http(portal.port, b"GET /config?ssid=crash-me&pass= HTTP/1.1\r\n"
                           b"Host: 127.0.0.1\r\n\r\n")
    assert (status, json.loads(body)) == (400, {"status": "error", "msg": "bad request"})
    assert ok_reply(http(portal.port, f"GET /config?ssid=home&pass=&blynk={TOKEN} HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\n\r\n".encode()))


def test_a_request_that_runs_out_of_memory_is_503_try_again_and_the_portal_serves_on(portal):
    # not the client's fault (no 400): the same request may work once the heap has room
    status, _, body = http(portal.port, b"GET /config?ssid=no-memory&pass= HTTP/1.1\r\n"
                           b"Host: 127.0.0.1\r\n\r\n")
    assert (status, json.loads(body)) == (503, {"status": "error",
                                                "msg": "out of memory, try again"})
    assert ok_reply(http(portal.port, f"GET /config?ssid=home&pass=&blynk={TOKEN} HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\n\r\n".encode()))


def test_the_status_line_of_a_refusal_reads_error(portal):
    with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as s:
        s.sendall(b"GET /config?ssid=%zz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        line = s.makefile("rb").readline()
    assert line == b"HTTP/1.1 400 Error\r\n"


def reply_to(port, raw, close=False):
    """(status, msg) of the reply to raw bytes; close: the client's side ends after them."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        if close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while part := s.recv(4096):
            data += part
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["msg"]


def test_a_header_line_without_a_colon_is_400_malformed_request(portal):
    assert reply_to(portal.port, b"GET /config?ssid=home&pass= HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"NoColonHere\r\n\r\n") == (400, "malformed request")
    assert portal.applied() == []


def test_a_request_of_another_protocol_than_http_1_is_400_malformed_request(portal):
    assert reply_to(portal.port, b"GET /config?ssid=home&pass= SPDY/3\r\nHost: 127.0.0.1\r\n\r\n"
                    ) == (400, "malformed request")
    assert portal.applied() == []


def test_a_body_that_ends_before_its_content_length_is_400_naming_it(portal):
    assert reply_to(portal.port, b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Length: 50\r\n\r\nssid=home", close=True) == (
        400, "body shorter than Content-Length")
    assert portal.applied() == []


def test_a_json_body_that_is_not_an_object_is_400_naming_the_body(portal):
    assert reply_to(portal.port, b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                    b"application/json\r\nContent-Length: 8\r\n\r\n[\"home\"]") == (
        400, "body: must be a JSON object")
    assert portal.applied() == []


def test_the_page_hides_what_a_profile_marks_secret(portal):
    page = http(portal.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[2]
    assert b'name="blynk" type="password"' in page  # the token: ("blynk", ..., True)


def test_a_wrong_pop_of_the_right_length_is_refused(pop_portal):
    assert pop_config(pop_portal, "pop-9999") == (403, "pop: missing or wrong")  # 8 like pop-1234
    assert pop_portal.applied() == []
