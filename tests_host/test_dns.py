"""onboard.dns: every A query answered with the AP address, malformed ones dropped."""

import os
import socket
import struct
import subprocess

import pytest
from conftest import MICROPYPATH, micropython_binary

SERVER = """
import asyncio, sys
from onboard.dns import CaptiveDNS
async def main():
    dns = CaptiveDNS("127.0.0.1", int(sys.argv[1]), sys.argv[2] == "captive")
    task = asyncio.create_task(dns.run())
    await asyncio.sleep_ms(50)
    print("@ready")
    await task
asyncio.run(main())
"""


def query(qid, name, qtype=1):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)


def start(tmp_path, mode):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "dns_server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([micropython_binary(), str(script), str(port), mode],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, MICROPYPATH=":".join(MICROPYPATH)))
    assert proc.stdout.readline().strip() == "@ready"
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.connect(("127.0.0.1", port))
    return proc, client


@pytest.fixture(params=["captive"])
def dns(tmp_path, request):
    proc, client = start(tmp_path, request.param)
    yield client
    client.close()
    proc.kill()
    proc.wait()


@pytest.fixture
def app_only_dns(tmp_path):
    """The DNS of a product set up only by the app: portal.captive off."""
    proc, client = start(tmp_path, "app-only")
    yield client
    client.close()
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("name", ["blynk.setup", "BLYNK.Setup"])
def test_blynk_setup_is_answered_with_the_ap_address_when_not_captive(app_only_dns, name):
    app_only_dns.send(query(0x0B0B, name))
    reply = app_only_dns.recv(512)
    assert reply[:2] == b"\x0b\x0b" and reply[3] & 0x0F == 0  # NOERROR
    assert struct.unpack(">H", reply[6:8])[0] == 1
    assert reply[-4:] == bytes([127, 0, 0, 1])


def test_other_names_get_servfail_and_no_address_when_not_captive(app_only_dns):
    app_only_dns.send(query(0x0C0C, "connectivitycheck.gstatic.com"))
    reply = app_only_dns.recv(512)
    assert reply[:2] == b"\x0c\x0c" and reply[3] & 0x0F == 2  # SERVFAIL, as Edgent's
    assert struct.unpack(">H", reply[6:8])[0] == 0


@pytest.mark.parametrize("name", ["connectivitycheck.gstatic.com", "example.com", "a.b.c.d.e",
                                  "blynk.setup"])
def test_any_a_query_is_answered_with_the_ap_address(dns, name):
    dns.send(query(0x1234, name))
    reply = dns.recv(512)
    assert reply[:2] == b"\x12\x34"
    assert reply[2] & 0x80  # a response
    assert struct.unpack(">H", reply[6:8])[0] == 1  # one answer
    assert reply[-4:] == bytes([127, 0, 0, 1])
    assert struct.unpack(">I", reply[-10:-6])[0] == 60  # TTL


@pytest.mark.parametrize("packet", [b"", b"\x00" * 5, b"\x12\x34\x81\x80" + b"\x00" * 20,
                                    query(7, "x.y")[:-3], b"\xff" * 100,
                                    query(7, "x.y")[:12] + b"\xc0\x0c" + b"\x00" * 4],
                         ids=["empty", "short", "a-response", "truncated", "garbage",
                              "compressed-question"])
def test_malformed_packet_is_dropped_and_the_server_keeps_answering(dns, packet):
    dns.send(packet)
    dns.send(query(0x4242, "after.example"))
    reply = dns.recv(512)  # the first reply that comes is the valid query's
    assert reply[:2] == b"\x42\x42"


def test_non_a_query_gets_an_empty_answer(dns):
    dns.send(query(9, "example.com", qtype=28))  # AAAA
    reply = dns.recv(512)
    assert reply[:2] == b"\x00\x09" and struct.unpack(">H", reply[6:8])[0] == 0


