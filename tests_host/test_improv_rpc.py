"""onboard.improv on its own, on the wire: Improv runs on the Unix port reading
stdin and writing stdout, with stand-ins for the runtime's scan, join and
arrive that write down on stderr how they were called."""

import json
import os
import select
import subprocess

import pytest
from conftest import MICROPYPATH, micropython_binary

from onboard_cli.improv import (
    ERROR,
    GET_CURRENT_STATE,
    GET_DEVICE_INFO,
    GET_WIFI_NETWORKS,
    RESULT,
    RPC,
    STATE,
    WIFI_SETTINGS,
    packet,
    parse_strings,
    rpc,
    wifi_settings,
)

READY, PROVISIONING, PROVISIONED = b"\x02", b"\x03", b"\x04"
INVALID, UNKNOWN, UNABLE = b"\x01", b"\x02", b"\x03"
INFO = ["Sensor", "1.2.3", "ESP32-C3", "Acme Sensor-0001"]
URL = "http://192.168.4.1/"

SCRIPT = """
import asyncio, json, sys
from onboard.improv import Improv

def note(*what):
    sys.stderr.write(json.dumps(what) + "\\n")

def scan():
    return [{"ssid": "home", "rssi": -50, "sec": "WPA2"}, {"ssid": "cafe", "rssi": -61,
                                                           "sec": "OPEN"}]

async def join(ssid, password):
    note("join", ssid, password)
    return 0 if password == "correct horse" else 722

def arrive(fields, joined=False):
    note("arrive", fields, joined)
    if fields["ssid"] == "refused":
        raise ValueError("ssid: refused by the product")

improv = Improv((open("/dev/stdin", "rb"), open("/dev/stdout", "wb")), %s, scan, join, arrive,
                %r)
asyncio.run(improv.run())
note("ended")
"""


class Wire:
    def __init__(self, proc):
        self.proc, self.buf = proc, b""

    def send(self, raw):
        self.proc.stdin.write(raw)
        self.proc.stdin.flush()

    def packet(self, timeout=10):
        """The next packet the device sends, as (type, data)."""
        fd = self.proc.stdout.fileno()
        while True:
            i = self.buf.find(b"IMPROV")
            if i >= 0 and len(self.buf) >= i + 10 and len(self.buf) >= i + 10 + self.buf[i + 8]:
                n = self.buf[i + 8]
                raw, self.buf = self.buf[i : i + 10 + n], self.buf[i + 10 + n :]
                assert sum(raw[:-1]) & 0xFF == raw[-1], f"bad checksum in {raw!r}"
                return raw[7], raw[9 : 9 + n]
            assert select.select([fd], [], [], timeout)[0], f"no packet; have {self.buf!r}"
            chunk = os.read(fd, 1024)
            assert chunk, f"the device ended; have {self.buf!r}"
            self.buf += chunk

    def end(self):
        """Close the device's input; what its stand-ins noted (it must end)."""
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        return [json.loads(line) for line in self.proc.stderr.read().splitlines()
                if line.startswith(b"[")]


@pytest.fixture
def wire(tmp_path):
    script = tmp_path / "improv_device.py"
    script.write_text(SCRIPT % (tuple(INFO), URL))
    proc = subprocess.Popen([micropython_binary(), str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, MICROPYPATH=":".join(MICROPYPATH)))
    w = Wire(proc)
    assert w.packet() == (STATE, READY)  # what it says first
    yield w
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdin.close() if not proc.stdin.closed else None
    proc.stdout.close()
    proc.stderr.close()


def result(wire, command):
    kind, data = wire.packet()
    assert kind == RESULT and data[0] == command and data[1] == len(data) - 2
    return parse_strings(data[2:])


def test_current_state_is_ready_and_has_no_url_before_provisioning(wire):
    wire.send(rpc(GET_CURRENT_STATE))
    assert wire.packet() == (STATE, READY)
    wire.send(rpc(GET_DEVICE_INFO))
    assert wire.packet()[0] == RESULT  # the next packet: no URL came before it


def test_device_info_is_firmware_version_chip_and_device_name(wire):
    wire.send(rpc(GET_DEVICE_INFO))
    assert result(wire, GET_DEVICE_INFO) == INFO


def test_wifi_networks_give_ssid_rssi_and_whether_secured_then_an_empty_result(wire):
    wire.send(rpc(GET_WIFI_NETWORKS))
    assert [result(wire, GET_WIFI_NETWORKS) for _ in range(3)] == [
        ["home", "-50", "YES"], ["cafe", "-61", "NO"], []]


def test_settings_that_join_provision_and_hand_over_the_credentials(wire):
    wire.send(wifi_settings("home", "correct horse"))
    assert wire.packet() == (STATE, PROVISIONING)
    assert wire.packet() == (STATE, PROVISIONED)
    assert result(wire, WIFI_SETTINGS) == [URL]
    assert wire.end()[:2] == [["join", "home", "correct horse"],
                              ["arrive", {"ssid": "home", "pass": "correct horse"}, True]]


def test_current_state_once_provisioned_is_provisioned_with_the_url(wire):
    wire.send(wifi_settings("home", "correct horse"))
    result_seen = [wire.packet() for _ in range(3)]
    assert result_seen[-1][0] == RESULT
    wire.send(rpc(GET_CURRENT_STATE))
    assert wire.packet() == (STATE, PROVISIONED)
    assert result(wire, GET_CURRENT_STATE) == [URL]


def test_settings_that_do_not_join_are_error_3_then_ready_and_nothing_handed_over(wire):
    wire.send(wifi_settings("home", "wrong horse"))
    assert [wire.packet() for _ in range(3)] == [(STATE, PROVISIONING), (ERROR, UNABLE),
                                                 (STATE, READY)]
    wire.send(rpc(GET_CURRENT_STATE))
    assert wire.packet() == (STATE, READY)
    assert wire.end() == [["join", "home", "wrong horse"], ["ended"]]


def test_settings_the_product_refuses_are_error_1_then_ready(wire):
    wire.send(wifi_settings("refused", "correct horse"))
    assert [wire.packet() for _ in range(3)] == [(STATE, PROVISIONING), (ERROR, INVALID),
                                                 (STATE, READY)]
    wire.send(rpc(GET_CURRENT_STATE))
    assert wire.packet() == (STATE, READY)


@pytest.mark.parametrize("ssid,password,error", [("home", "wrong horse", UNABLE),
                                                   ("refused", "correct horse", INVALID)])
def test_a_failed_attempt_after_provisioning_leaves_the_state_ready(wire, ssid, password,
                                                                     error):
    # the state it announces after the failure is the one it reports when asked
    wire.send(wifi_settings("home", "correct horse"))
    assert [wire.packet()[0] for _ in range(3)] == [STATE, STATE, RESULT]
    wire.send(wifi_settings(ssid, password))
    assert [wire.packet() for _ in range(3)] == [(STATE, PROVISIONING), (ERROR, error),
                                                 (STATE, READY)]
    wire.send(rpc(GET_CURRENT_STATE))
    assert wire.packet() == (STATE, READY)
    wire.send(rpc(GET_DEVICE_INFO))
    assert wire.packet()[0] == RESULT  # no URL: it is not provisioned any more


def settings_body(ssid, password):
    return bytes((len(ssid),)) + ssid + bytes((len(password),)) + password


@pytest.mark.parametrize("body", [
    settings_body(b"home", b"correct horse") + b"x",  # a byte more than the lengths say
    settings_body(b"home", b"correct horse")[:-1],  # a byte less
    b"\x04home",  # no password length
    b"",
    settings_body(b"\xff\xfehome", b"correct horse"),  # not UTF-8
    settings_body(b"x" * 33, b"correct horse"),  # over 32 bytes
    settings_body(b"home", b"short12"),  # 7 characters
], ids=["extra-byte", "missing-byte", "no-password", "empty", "not-utf8", "long-ssid",
        "short-password"])
def test_malformed_or_invalid_settings_are_error_1_and_nothing_is_joined(wire, body):
    wire.send(rpc(WIFI_SETTINGS, body))
    assert wire.packet() == (ERROR, INVALID)
    assert wire.end() == [["ended"]]


def version_2(raw):
    raw = raw[:6] + b"\x02" + raw[7:-1]
    return raw + bytes((sum(raw) & 0xFF,))


@pytest.mark.parametrize("raw", [
    packet(RPC, bytes((GET_DEVICE_INFO, 0)), checksum=0),
    version_2(rpc(GET_DEVICE_INFO)),
    rpc(0x42, b"x" * 127),  # 129 bytes of data
    packet(RPC, bytes((GET_DEVICE_INFO, 1))),  # the RPC says one byte follows, none does
    packet(RPC, bytes((GET_DEVICE_INFO, 0, 0))),  # one more than it says
    packet(RPC, bytes((GET_DEVICE_INFO,))),  # no RPC length
    packet(RPC, b""),  # no data at all: the shortest packet, 10 bytes
], ids=["checksum", "version-2", "over-128-bytes", "rpc-short", "rpc-long", "rpc-no-length",
        "rpc-empty"])
def test_a_bad_packet_is_error_1_and_the_next_one_is_answered(wire, raw):
    wire.send(raw)
    assert wire.packet() == (ERROR, INVALID)
    wire.send(rpc(GET_CURRENT_STATE))
    assert wire.packet() == (STATE, READY)


def test_unknown_command_of_128_bytes_is_error_2(wire):
    wire.send(rpc(0x42, b"x" * 126))  # 128 bytes of data: the most a packet may carry
    assert wire.packet() == (ERROR, UNKNOWN)


def test_packet_after_noise_and_in_pieces_is_found(wire):
    raw = rpc(GET_CURRENT_STATE)
    wire.send(b"boot log line\nIMPRO\n")
    for piece in (raw[:3], raw[3:8], raw[8:]):
        wire.send(piece)
    assert wire.packet() == (STATE, READY)


def test_packet_of_another_type_than_rpc_gets_no_reply(wire):
    wire.send(packet(STATE, READY))
    wire.send(rpc(GET_DEVICE_INFO))
    assert wire.packet()[0] == RESULT


def test_improv_ends_when_its_stream_ends(wire):
    assert wire.end() == [["ended"]]
