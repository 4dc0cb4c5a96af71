"""onboard.clock under the Unix port against loopback time sources: cloudsim's
SNTP server (test-local instances, told to answer badly) and its plain-HTTP
Date port. Every config here points time.ntp at loopback: nothing may send a
packet to a public time server."""

import json
import socket
import time
from email.utils import formatdate
from pathlib import Path

import pytest
from conftest import LIB
from servers import Server, reply

from cloudsim.timesrc import SNTP_FAULTS, DateServer, SntpServer

ROOT = Path(__file__).resolve().parents[1]
# the test servers' clock runs 3 days ahead of the host's, so a device that
# read the host's clock instead of the server would be caught
AHEAD = 3 * 86400
UNRESOLVABLE = "a" * 64 + ".invalid"  # a 64-character label: refused at once, no DNS asked

SYNC = """
import asyncio, json, time
from onboard import clock
config = %(config)s
if %(floor)r is not None:
    clock.BUILD = %(floor)r
ticks = [0]

async def ticker():
    while True:
        ticks[0] += 1
        await asyncio.sleep_ms(5)

async def main():
    t = asyncio.create_task(ticker())
    await asyncio.sleep_ms(0)
    start = ticks[0]
    ok = await clock.sync(config, timeout_ms=%(timeout)d)
    moved = ticks[0] - start
    t.cancel()
    return ok, moved

before = clock.now()
ok, moved = asyncio.run(main())
print(json.dumps({"before": before, "ok": ok, "now": clock.now(), "known": clock.is_known(),
                  "ticks": moved, "host": time.time()}))
"""


@pytest.fixture
def sntp():
    started = []

    def start(fault=None, offset=AHEAD, now=None, **server):
        s = SntpServer(now or (lambda: time.time() + offset), fault=fault, **server).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def date_server():
    s = DateServer(lambda: time.time() + AHEAD).start()
    yield s
    s.stop()


@pytest.fixture
def sync(mpy):
    def run(config, timeout=2000, floor=None):
        code = SYNC % {"config": json.dumps(config), "timeout": timeout, "floor": floor}
        return json.loads(mpy.run(code).lines[-1])
    return run


def dead_udp_port():
    # a loopback UDP port nobody listens on: the device gets ICMP port unreachable
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ntp(*servers):
    return {"time": {"ntp": [f"127.0.0.1:{s.port}" if hasattr(s, "port") else s
                             for s in servers]}}


def ahead_of_host(out):
    # the device's clock against the host's, in seconds (whole-second rounding: +-2)
    return out["now"] - out["host"]


# SNTP ---------------------------------------------------------------------------

def test_the_clock_is_unknown_at_power_on_even_on_the_unix_port(mpy):
    out = mpy.run("""
        from onboard import clock
        print(clock.now(), clock.is_known())
    """).lines[-1]
    assert out == "None False"


def test_sntp_sets_the_clock_to_the_servers_time_not_the_hosts(sntp, sync):
    server = sntp()
    out = sync(ntp(server))
    assert out["before"] is None
    assert out["ok"] is True and out["known"] is True
    assert abs(ahead_of_host(out) - AHEAD) <= 2
    assert server.requests == 1


def test_sntp_follows_cloudsims_clock_once_it_is_moved(sntp, sync):
    server = sntp(offset=AHEAD + 7 * 86400)
    out = sync(ntp(server))
    assert abs(ahead_of_host(out) - (AHEAD + 7 * 86400)) <= 2


def test_sntp_reads_a_time_after_the_2036_ntp_era_rollover(sntp, sync):
    import calendar
    offset = calendar.timegm((2040, 1, 1, 0, 0, 0)) - time.time()
    out = sync(ntp(sntp(offset=offset)))
    assert out["ok"] is True and abs(ahead_of_host(out) - offset) <= 2


@pytest.mark.parametrize("kind", sorted(set(SNTP_FAULTS) - {"silent"}))
def test_an_invalid_sntp_reply_is_refused(kind, sntp, sync):
    server = sntp({"kind": kind, "count": -1})
    out = sync(ntp(server), timeout=500)
    assert server.requests == 1  # it asked, and got the bad reply
    assert (out["ok"], out["now"], out["known"]) == (False, None, False)


def test_a_silent_sntp_server_times_out_while_the_event_loop_keeps_running(sntp, sync):
    server = sntp({"kind": "silent", "count": -1})
    out = sync(ntp(server), timeout=500)
    assert server.requests == 1
    assert (out["ok"], out["now"]) == (False, None)
    assert out["ticks"] >= 2  # the ticker task ran again and again while sync waited


def test_the_next_sntp_server_is_asked_when_one_fails(sntp, sync):
    bad, good = sntp({"kind": "kiss", "count": -1}), sntp()
    out = sync(ntp(f"127.0.0.1:{dead_udp_port()}", bad, good))
    assert out["ok"] is True and abs(ahead_of_host(out) - AHEAD) <= 2
    assert (bad.requests, good.requests) == (1, 1)


def test_a_server_that_refuses_the_request_is_passed_over_not_waited_out(sntp, sync):
    # (the Unix port reports the ICMP "port unreachable" as ECONNREFUSED on
    # the next read.) Given ten minutes per server, a client that waited out
    # the refusing one would not finish within the run's own bound.
    good = sntp()
    out = sync(ntp(f"127.0.0.1:{dead_udp_port()}", good), timeout=600_000)
    assert out["ok"] is True and good.requests == 1


# well-formed replies as real servers send them: each is taken
@pytest.mark.parametrize("server", [
    {"delay": 0.3},  # a far server: its reply comes a round trip later, not at once
    {"stratum": 1},  # a reference clock's own server (time.google.com is one)
    {"stratum": 15},  # the last synchronised stratum
    {"mode": 5},  # broadcast: RFC 4330 lets a client take mode 4 or 5
    {"version": 3},  # an NTPv3 server
], ids=["late", "stratum-1", "stratum-15", "mode-5", "version-3"])
def test_a_well_formed_reply_of_another_kind_of_server_sets_the_clock(server, sntp, sync):
    out = sync(ntp(sntp(**server)))
    assert out["ok"] is True and abs(ahead_of_host(out) - AHEAD) <= 2


def test_an_ntp_server_name_that_does_not_resolve_is_passed_over(sntp, sync):
    good = sntp()
    out = sync(ntp(UNRESOLVABLE, good))
    assert out["ok"] is True and good.requests == 1


def test_a_name_alone_is_asked_at_the_ntp_port_123(sntp, sync):
    try:
        server = sntp(port=123)
    except OSError as e:  # (binding port 123 needs root, as CI runs)
        pytest.skip(f"port 123: {e}")
    out = sync({"time": {"ntp": ["127.0.0.1"]}})
    assert server.requests == 1 and out["ok"] is True


def test_sync_leaves_no_socket_open_whatever_each_source_did(sntp, date_server, mpy):
    # the device's open files as Linux counts them, before and after syncs whose
    # servers answered, stayed silent, or did not resolve (each a UDP socket made)
    silent = sntp({"kind": "silent", "count": -1})
    servers = [f"127.0.0.1:{sntp().port}", f"127.0.0.1:{silent.port}", UNRESOLVABLE]
    out = mpy.run("""
        import asyncio, os
        from onboard import timesync
        def files():
            return len(os.listdir("/proc/self/fd"))
        before = files()
        for server in %r:
            asyncio.run(timesync.sync({"time": {"ntp": [server]}}, 200))
        asyncio.run(timesync.sync({"time": {"ntp": [], "http": "http://127.0.0.1:%d/"}}, 2000))
        print(before, files())
    """ % (servers, date_server.port)).lines[-1].split()
    assert date_server.requests == 1
    assert out[0] == out[1]


def test_an_sntp_time_earlier_than_the_build_is_refused(sntp, sync):
    server = sntp()
    floor = int(time.time() + AHEAD + 86400)  # a build "from tomorrow" of the server's time
    out = sync(ntp(server), floor=floor)
    assert server.requests == 1
    assert (out["ok"], out["now"]) == (False, None)


def test_a_malformed_ntp_setting_names_the_field(mpy):
    out = mpy.run("""
        import asyncio
        from onboard import clock
        for config in ({"time": {"ntp": "127.0.0.1"}}, {"time": {"ntp": ["127.0.0.1:x"]}},
                       {"time": {"ntp": [], "http": "https://127.0.0.1/"}}):
            try:
                asyncio.run(clock.sync(config, timeout_ms=200))
                print("accepted")
            except ValueError as e:
                print(e)
    """).lines
    assert out[0].startswith("time.ntp:")
    assert out[1].startswith("time.ntp:")
    assert out[2].startswith("time.http:")


# HTTP Date fallback ----------------------------------------------------------------

def test_the_http_date_sets_the_clock_when_no_sntp_server_answers(sntp, date_server, sync):
    silent = sntp({"kind": "silent", "count": -1})
    config = ntp(silent, f"127.0.0.1:{dead_udp_port()}")
    config["time"]["http"] = f"http://127.0.0.1:{date_server.port}/"
    out = sync(config, timeout=300)
    assert silent.requests == 1 and date_server.requests == 1
    assert out["ok"] is True and abs(ahead_of_host(out) - AHEAD) <= 2


def test_the_http_date_is_not_asked_when_sntp_answers(sntp, date_server, sync):
    config = ntp(sntp())
    config["time"]["http"] = f"http://127.0.0.1:{date_server.port}/"
    assert sync(config)["ok"] is True
    assert date_server.requests == 0


def test_the_date_of_any_http_reply_sets_the_clock_not_only_a_200s(sync):
    # time.http is often the cloud's API, whose root answers 404: its Date is as good
    date = formatdate(time.time() + AHEAD, usegmt=True).encode()
    server = Server(reply(b"HTTP/1.1 404 Not Found\r\nDate: " + date
                          + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    try:
        out = sync({"time": {"ntp": [], "http": server.url()}})
    finally:
        server.close()
    assert out["ok"] is True and abs(ahead_of_host(out) - AHEAD) <= 2


def test_an_http_date_earlier_than_the_build_is_refused(date_server, sync):
    config = {"time": {"ntp": [], "http": f"http://127.0.0.1:{date_server.port}/"}}
    out = sync(config, floor=int(time.time() + AHEAD + 86400))
    assert date_server.requests == 1
    assert (out["ok"], out["now"]) == (False, None)


def test_an_http_time_source_that_does_not_answer_leaves_the_clock_unknown(sync):
    with socket.socket() as s:  # a loopback TCP port nobody listens on: refused at once
        s.bind(("127.0.0.1", 0))
        config = {"time": {"ntp": [], "http": f"http://127.0.0.1:{s.getsockname()[1]}/"}}
        out = sync(config)
    assert (out["ok"], out["now"], out["known"]) == (False, None, False)


def test_no_source_at_all_leaves_the_clock_unknown(sync):
    out = sync({"time": {"ntp": [f"127.0.0.1:{dead_udp_port()}"]}})
    assert (out["ok"], out["now"], out["known"]) == (False, None, False)


# learn(): a verified server's Date -------------------------------------------------

LEARN = """
import json, time
from onboard import clock, httpdate
clock.BUILD = %(floor)d
out = []
for text in %(dates)s:
    out.append([httpdate.learn(text), clock.now()])
print(json.dumps(out))
"""


def learn(mpy, dates, floor=0):
    return json.loads(mpy.run(LEARN % {"dates": json.dumps(dates), "floor": floor}).lines[-1])


def test_learn_sets_an_unknown_clock_from_a_date(mpy):
    [(taken, now)] = learn(mpy, ["Tue, 01 Dec 2026 10:00:00 GMT"])
    assert taken is True and now in (1796119200, 1796119201)


def test_learn_moves_a_clock_that_is_off(mpy):
    out = learn(mpy, ["Tue, 01 Dec 2026 10:00:00 GMT", "Tue, 01 Dec 2026 11:00:00 GMT"])
    assert out[1][0] is True and out[1][1] - 1796119200 in (3600, 3601)


def test_learn_keeps_a_clock_within_a_second_of_the_date(mpy):
    out = learn(mpy, ["Tue, 01 Dec 2026 10:00:00 GMT", "Tue, 01 Dec 2026 10:00:01 GMT"])
    assert out[1][0] is False and out[1][1] - out[0][1] in (0, 1)


def test_learn_moves_a_clock_two_seconds_ahead_of_the_date(mpy):
    out = learn(mpy, ["Tue, 01 Dec 2026 10:00:00 GMT", "Tue, 01 Dec 2026 09:59:58 GMT"])
    assert out[1][0] is True and out[1][1] - 1796119200 in (-2, -1)


def test_learn_refuses_a_date_earlier_than_the_build(mpy):
    out = learn(mpy, ["Tue, 01 Dec 2026 10:00:00 GMT"], floor=1796119200 + 1)
    assert out == [[False, None]]


@pytest.mark.parametrize("text", ["", "yesterday", "Tue, 01 Dec 2026 10:00:00 UTC",
                                  "Tue, 01 ecD 2026 10:00:00 GMT", "Tue, 32 Dec 2026 10:00:00 GMT",
                                  "Tue, 01 Dec 2026 24:00:00 GMT", "Tue 01 Dec 2026 10:00:00 GMT",
                                  "Tue, 00 Dec 2026 10:00:00 GMT", "Tue, 01 Dec 2026 10:60:00 GMT",
                                  "Tue, 01 Dec 2026 10:00:61 GMT"])
def test_learn_ignores_what_is_not_an_imf_fixdate(mpy, text):
    assert learn(mpy, [text]) == [[False, None]]


def test_http_date_reads_imf_fixdate_as_unix_seconds(mpy):
    import calendar
    dates = {"Sun, 06 Nov 1994 08:49:37 GMT": (1994, 11, 6, 8, 49, 37),
             "Tue, 29 Feb 2028 23:59:59 GMT": (2028, 2, 29, 23, 59, 59),
             "Wed, 01 Mar 2028 00:00:00 GMT": (2028, 3, 1, 0, 0, 0),  # the day after Feb 29
             "Mon, 31 Mar 2025 23:59:59 GMT": (2025, 3, 31, 23, 59, 59),
             "Wed, 01 Mar 2000 00:00:00 GMT": (2000, 3, 1, 0, 0, 0),  # after a 400-year leap day
             "Thu, 01 Jan 1970 00:00:00 GMT": (1970, 1, 1, 0, 0, 0),
             "Fri, 31 Dec 2100 12:00:00 GMT": (2100, 12, 31, 12, 0, 0)}
    out = mpy.run("from onboard.httpdate import http_date\nfor d in %r:\n    print(http_date(d))"
                  % list(dates)).lines
    assert [int(x) for x in out] == [calendar.timegm(t) for t in dates.values()]


# build time and board hook ----------------------------------------------------------

def test_the_build_time_and_build_date_of_the_source_tree_agree(mpy):
    import calendar
    out = mpy.run("""
        from onboard import clock
        print(clock.BUILD)
        print(clock.BUILD_DATE)
    """).lines
    stamp = time.strptime(out[1], "%b %d %Y %H:%M:%S")
    assert calendar.timegm(stamp) == int(out[0])


# a board that records the times set on it, attached to the clock as b (after
# `before`: lines that run first, e.g. a build time of the test's own)
ATTACHED = """
import asyncio, time
from onboard import clock
%s
class Board:
    got = []
    def set_time(self, unix):
        self.got.append(unix)
b = Board()
clock.attach(b)
"""


def test_a_set_clock_calls_the_boards_set_time(sntp, mpy):
    server = sntp()
    out = mpy.run(ATTACHED % "" + """
ok = asyncio.run(clock.sync({"time": {"ntp": ["127.0.0.1:%d"]}}))
print(ok, len(b.got) == 1 and -1 <= b.got[0] - clock.now() <= 0)
""" % server.port).lines[-1]
    assert out == "True True"


@pytest.mark.parametrize("fraction, rounded", [(0.25, 0), (0.5, 1), (0.75, 1)])
def test_sntp_rounds_the_servers_time_to_the_nearest_second(sntp, mpy, fraction, rounded):
    # a server whose clock stands still at a whole second plus a fraction: the
    # time the board's clock is set to is the nearest whole second
    second = int(time.time()) + AHEAD
    server = sntp(now=lambda: second + fraction)
    out = mpy.run(ATTACHED % "" + """
ok = asyncio.run(clock.sync({"time": {"ntp": ["127.0.0.1:%d"]}}))
print(ok, b.got)
""" % server.port).lines[-1]
    assert out == f"True [{second + rounded}]"


@pytest.mark.parametrize("ahead", [86400, -86400], ids=["clock before the build",
                                                         "clock after it"])
def test_attaching_a_board_whose_clock_reads_before_the_build_sets_it_to_the_build(mpy, ahead):
    # (a board powers on in 2000; the host's clock stands in for it, the build
    # put a day after or before it): the time still unknown to now()
    out = mpy.run(ATTACHED % f"clock.BUILD = int(time.time()) + clock._EPOCH + {ahead}"
                  + "print(b.got == [clock.BUILD], b.got == [], clock.now())").lines[-1]
    assert out == ("True False None" if ahead > 0 else "False True None")


# no public time server from the suite --------------------------------------------

def loopback_only(config):
    servers = config.get("time", {}).get("ntp")
    return bool(servers) and all(s.split(":")[0] in ("127.0.0.1", "localhost") for s in servers)


def test_the_product_default_stays_pool_ntp_org(mpy):
    shipped = json.loads((ROOT / "firmware" / "config.example.json").read_text())
    assert shipped.get("time", {}).get("ntp", ["pool.ntp.org"]) == ["pool.ntp.org"]
    source = (LIB / "onboard" / "timesync.py").read_text()
    assert '("pool.ntp.org",)' in source


def test_a_simulated_device_asks_no_time_server_by_default(tmp_path, monkeypatch):
    import onboard_cli.simdevice as simdevice

    class Stop(Exception):
        pass

    def no_process(*a, **kw):
        raise Stop
    monkeypatch.setattr(simdevice.subprocess, "Popen", no_process)
    with pytest.raises(Stop):
        simdevice.Device(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["time"]["ntp"] == []


@pytest.mark.parametrize("time_cfg", [{"ntp": ["pool.ntp.org"]}, {}, {"ntp": ["127.0.0.1:9"],
                                      "http": "http://example.com/"}])
def test_a_simulated_device_refuses_a_time_server_off_loopback(tmp_path, time_cfg):
    import onboard_cli.simdevice as simdevice

    with pytest.raises(ValueError, match="not on loopback"):
        simdevice.Device(tmp_path, config={"time": time_cfg})


def test_cloudsims_time_config_is_loopback_only(cloudsim):
    assert loopback_only({"time": cloudsim.time_config()})


# cloudsim's time sources --------------------------------------------------------------

def test_cloudsims_ready_line_names_its_sntp_and_http_time_sources(cloudsim, sync):
    ready = json.loads(cloudsim.ready_line())
    assert ready["sntp"] == f"udp://127.0.0.1:{cloudsim.sntp.port}"
    assert ready["http"].startswith("http://127.0.0.1:")
    out = sync({"time": {"ntp": [ready["sntp"][len("udp://"):]]}})
    assert out["ok"] is True and abs(ahead_of_host(out) - cloudsim.clock_offset) <= 2
    out = sync({"time": {"ntp": [], "http": ready["http"] + "/"}})
    assert out["ok"] is True and abs(ahead_of_host(out) - cloudsim.clock_offset) <= 2


def test_cloudsims_sntp_fault_control_makes_it_answer_badly(cloudsim, sync):
    import urllib.request

    def control(method, doc=None):
        req = urllib.request.Request(
            f"https://127.0.0.1:{cloudsim.https_port}/_sim/sntp", method=method,
            data=json.dumps(doc).encode() if doc else None,
            headers={"Authorization": f"Bearer {cloudsim.admin_token}",
                     "Content-Type": "application/json"})
        import ssl
        ctx = ssl.create_default_context(cafile=str(cloudsim.dir / "ca.pem"))
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status
    assert control("POST", {"kind": "zero", "count": -1}) == 201
    try:
        out = sync({"time": {"ntp": [f"127.0.0.1:{cloudsim.sntp.port}"]}})
        assert (out["ok"], out["now"]) == (False, None)
    finally:
        assert control("DELETE") == 200
    assert sync({"time": {"ntp": [f"127.0.0.1:{cloudsim.sntp.port}"]}})["ok"] is True


# the build stamp ---------------------------------------------------------------------

def test_onboard_build_stamps_the_build_time_into_the_package(tmp_path, mpy, monkeypatch):
    from onboard_cli.build import build

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1705667130")  # 2024-01-19 12:25:30 UTC
    build(out=tmp_path / "build")
    out = mpy.run("""
        import sys
        sys.path.insert(0, %r)
        from onboard import clock
        print(clock.__file__)
        print(clock.BUILD)
        print(clock.BUILD_DATE)
    """ % str(tmp_path / "build")).lines
    assert out[0].endswith(".mpy")  # the built package, not lib/
    assert out[1:] == ["1705667130", "Jan 19 2024 12:25:30"]


def test_the_build_date_pads_a_one_digit_day_as_cs_date_does():
    from onboard_cli.build import stamp_text

    assert "BUILD_DATE = 'Dec  1 2026 10:00:00'" in stamp_text(1796119200)
