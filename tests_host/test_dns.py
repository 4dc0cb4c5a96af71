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

def server():
    if sys.argv[2] == "captive":
        return CaptiveDNS("127.0.0.1", int(sys.argv[1]))  # captive unless told otherwise
    return CaptiveDNS("127.0.0.1", int(sys.argv[1]), False)

async def main():
    dns = server()
    task = asyncio.create_task(dns.run())
    await asyncio.sleep_ms(0)  # the task binds its socket before its first wait
    print("@ready")
    stdin = asyncio.StreamReader(sys.stdin)
    while True:
        line = (await stdin.readline()).strip()
        if not line:
            return
        if line == b"stats":
            print("@stats", dns.answered, dns.dropped)
        elif line == b"restart":  # as setup mode ends and starts again
            task.cancel()
            dns = server()
            task = asyncio.create_task(dns.run())
            await asyncio.sleep_ms(0)
            print("@ready")
asyncio.run(main())
"""


def wire_name(name):
    out = b""
    for label in filter(None, name.split(".")):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def query(qid, name, qtype=1, flags=0x0100):
    """A one-question query; flags 0x0100: a standard query asking for recursion."""
    return struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 0) + wire_name(name) + struct.pack(
        ">HH", qtype, 1)


def long_name(length):
    """A name whose wire form (lengths, labels, the final zero) is `length` bytes."""
    labels, left = [], length - 1
    while left:
        n = min(63, left - 1)
        labels.append("a" * n)
        left -= n + 1
    return ".".join(labels)


def start(tmp_path, mode):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "dns_server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([micropython_binary(), str(script), str(port), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, MICROPYPATH=":".join(MICROPYPATH)))
    assert proc.stdout.readline().strip() == "@ready"
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.connect(("127.0.0.1", port))
    return proc, client


def command(proc, line):
    """Send the server script a line; its answer (the next line it prints)."""
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().split()


@pytest.fixture
def server(tmp_path):
    """(the server's process, a client socket) in captive mode, the default."""
    proc, client = start(tmp_path, "captive")
    yield proc, client
    client.close()
    proc.kill()
    proc.wait()


@pytest.fixture
def dns(server):
    return server[1]


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


@pytest.mark.parametrize("name", ["connectivitycheck.gstatic.com", "evil.blynk.setup"])
def test_other_names_get_servfail_and_no_address_when_not_captive(app_only_dns, name):
    app_only_dns.send(query(0x0C0C, name))
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
                                    query(7, "x.y")[:12] + b"\xc0\x0c" + b"\x00" * 4,
                                    query(7, "x")[:12] + b"\x04abcd",
                                    query(7, "x", flags=0x1000), query(7, "x", flags=0x8000),
                                    query(7, long_name(256)),
                                    query(7, "x.y")[:5] + b"\x00" + query(7, "x.y")[6:],
                                    query(7, "x.y")[:5] + b"\x02" + query(7, "x.y")[6:12]
                                    + query(7, "x.y")[12:] * 2],
                         ids=["empty", "short", "a-response", "truncated", "garbage",
                              "compressed-question", "name-without-end", "status-opcode",
                              "response-without-flags", "name-over-255-bytes", "no-question",
                              "two-questions"])
def test_malformed_packet_is_dropped_and_the_server_keeps_answering(dns, packet):
    dns.send(packet)
    dns.send(query(0x4242, "after.example"))
    reply = dns.recv(512)  # the first reply that comes is the valid query's
    assert reply[:2] == b"\x42\x42"


@pytest.mark.parametrize("qtype", [28, 257], ids=["AAAA", "CAA"])  # (CAA's low byte is A's)
def test_non_a_query_gets_an_empty_answer(dns, qtype):
    dns.send(query(9, "example.com", qtype=qtype))
    reply = dns.recv(512)
    assert reply[:2] == b"\x00\x09" and struct.unpack(">H", reply[6:8])[0] == 0




def question(q):
    return q[12:]


def test_answer_echoes_the_question_then_one_a_record_pointing_at_it(dns):
    q = query(0x2121, "phone.example")
    dns.send(q)
    reply = dns.recv(512)
    assert reply[:12] == b"\x21\x21\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
    # name = pointer to the question, type A, class IN, TTL 60, 4 bytes: the AP address
    record = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack(">I", 60) + b"\x00\x04\x7f\x00\x00\x01"
    assert reply[12:] == question(q) + record


def test_a_query_with_an_edns_record_is_answered_with_its_question_and_one_a_record(dns):
    # as phones' and dig's resolvers ask: an OPT record (EDNS0, 1232-byte UDP)
    # after the question; the reply carries no additional record
    q = query(0x2222, "phone.example")
    q = q[:10] + b"\x00\x01" + q[12:] + b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)
    dns.send(q)
    reply = dns.recv(512)
    record = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack(">I", 60) + b"\x00\x04\x7f\x00\x00\x01"
    assert reply == (b"\x22\x22\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
                     + question(query(0x2222, "phone.example")) + record)


def test_non_a_reply_echoes_the_question_and_has_no_records(dns):
    q = query(0x3131, "example.com", qtype=28)
    dns.send(q)
    assert dns.recv(512) == b"\x31\x31\x81\x80\x00\x01" + bytes(6) + question(q)


def test_servfail_reply_echoes_the_question_and_has_no_records(app_only_dns):
    q = query(0x3232, "example.com")
    app_only_dns.send(q)
    assert app_only_dns.recv(512) == b"\x32\x32\x81\x82\x00\x01" + bytes(6) + question(q)


def test_query_for_the_root_name_is_answered(dns):
    dns.send(query(0x5151, ""))  # 17 bytes: the shortest well-formed query
    assert dns.recv(512)[-4:] == bytes([127, 0, 0, 1])


def test_query_with_the_ad_flag_is_answered(dns):
    dns.send(query(0x5252, "example.com", flags=0x0120))  # as dig sends by default
    assert dns.recv(512)[-4:] == bytes([127, 0, 0, 1])


def test_name_of_255_bytes_is_answered(dns):
    dns.send(query(0x5353, long_name(255)))
    reply = dns.recv(512)
    assert reply[:2] == b"\x53\x53" and reply[-4:] == bytes([127, 0, 0, 1])


def test_server_counts_answered_and_dropped_queries(server):
    proc, client = server
    client.send(b"\xff" * 20)
    client.send(query(0x6161, "one.example"))
    client.recv(512)
    client.send(query(0x6262, "two.example"))
    client.recv(512)
    assert command(proc, "stats") == ["@stats", "2", "1"]


def test_cancelled_server_frees_its_port_for_the_next_one(server):
    proc, client = server
    assert command(proc, "restart") == ["@ready"]
    client.send(query(0x7171, "again.example"))
    assert client.recv(512)[:2] == b"\x71\x71"
    assert command(proc, "stats") == ["@stats", "1", "0"]  # the new server answered
