"""The portal's exact bounds and replies, each at its edge (found by the
mutation check, issue 13): what one byte more or less changes."""

import json

from test_portal import TOKEN, http, ok_reply, portal  # noqa: F401  (portal: a fixture)


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
