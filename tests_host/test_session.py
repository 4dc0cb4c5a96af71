"""onboard.session's contract with a cloud profile, run on the Unix port with
a profile of the test's own: a link with no session of its own, what the
runtime stores and says for it, and the code it lets go of afterwards."""

import json

import pytest
from servers import RefusingBroker

SESSION = """
import asyncio, json, sys
from onboard import log, session
log.level = log.ERROR


class Store:
    def __init__(self):
        self.data = {}

    def get(self, section):
        return dict(self.data.get(section, {}))

    def put(self, section, **fields):
        self.data.setdefault(section, {}).update(fields)


class Runtime:
    # what session.run asks of onboard.runtime.Runtime, recorded
    config = {"time": {"ntp": []}, "rejoin_after": 0}  # (a station that stays joined)
    backoff = (0.05, 0.1, 30)  # (base, cap, stable) seconds: retries at once
    state = None

    fresh = setup_requested = False  # (what session.online reads)
    session = None

    def __init__(self, profile):
        self.profile, self.store, self.said, self.errors = profile, Store(), [], []
        self.states = []

    def station(self):
        return Station

    def set_state(self, state):
        self.state = state
        self.states.append(state)

    def trial(self):
        return False

    def note(self, **fields):
        self.said.append(fields)

    def now_online(self):
        self.said.append("online")

    def set_error(self, code):
        self.errors.append(code)


class Station:  # joined, and it stays so
    def isconnected():
        return True


class Profile:
    # a profile whose links have no MQTT and no session of its own: online at once.
    # Each start takes the next of STARTS: a link, or ("transient"|"rejected"|"value",
    # args), or ("memory",)
    starts = 0

    async def start(rt):
        from onboard.cloud import Rejected, Transient
        import onboard.ahttp  # what a profile's HTTPS loads  # noqa: F401
        Profile.starts += 1
        got = STARTS.pop(0)
        if isinstance(got, dict):
            return got
        if got[0] == "memory":
            raise MemoryError
        if got[0] == "value":
            raise ValueError(*got[1])
        raise (Transient if got[0] == "transient" else Rejected)(*got[1])


async def main():
    rt = Runtime(Profile)
    # session.online (ATTEMPT: the failed tries before it) or one session
    retry = await (session.run(rt) if ATTEMPT is None else session.online(rt, ATTEMPT))
    print(json.dumps({"retry": retry, "said": rt.said, "errors": rt.errors, "states": rt.states,
                      "starts": Profile.starts, "setup": rt.setup_requested,
                      "stored": rt.store.data,
                      "loaded": sorted(m for m in sys.modules if m.startswith("onboard."))}))

asyncio.run(main())
"""


def session_script(*starts, attempt=None):
    """SESSION with its STARTS (and ATTEMPT: run session.online after so many)."""
    return f"STARTS = {list(starts)!r}\nATTEMPT = {attempt!r}\n" + SESSION


def run_session(mpy, *starts, attempt=None):
    return json.loads(mpy.run(session_script(*starts, attempt=attempt)).stdout.splitlines()[-1])


# the fake runtime above, without its profile and main: for onboard.failed alone
FAKE_RUNTIME = SESSION[:SESSION.index("class Profile")]

# the waits onboard.failed draws for ATTEMPTS
WAITS = FAKE_RUNTIME + """
Runtime.backoff = BACKOFF
from onboard.failed import wait_retry


async def main():
    rt = Runtime(None)
    for attempt in ATTEMPTS:
        await wait_retry(rt, attempt, 0)
    print(json.dumps([n["retry_in"] for n in rt.said]))

asyncio.run(main())
"""


def waits(mpy, attempts, backoff=(0.05, 0.1)):
    """The backoff's waits (base, cap seconds) after so many failed tries."""
    script = f"ATTEMPTS = {attempts!r}\nBACKOFF = {(*backoff, 30)!r}\n" + WAITS
    return json.loads(mpy.run(script).stdout.splitlines()[-1])


def test_the_backoffs_waits_are_drawn_over_the_whole_range_up_to_their_bound(mpy):
    # full jitter: uniform in [0, 0.05 s] at the first try, so of 40 waits some
    # are in its upper half (all 40 in the lower half: once in 2**40 runs)
    got = waits(mpy, [0] * 40)
    assert all(0 <= w <= 0.05 for w in got) and any(w > 0.025 for w in got), got


def test_with_no_backoff_configured_it_is_base_2_s_cap_64_s_stable_30_s(mpy):
    # DESIGN.md's defaults, as the runtime boot makes them from a config without "backoff"
    out = mpy.run("""
        import json
        from onboard import boot

        class Board:
            def store_path(self):
                return "flash.json"

            def set_time(self, t):
                pass

            def unique_id(self):
                return bytes(6)

        print(json.dumps(boot.make({}, Board()).backoff))
    """).lines[-1]
    assert json.loads(out) == [2, 64, 30]


def test_a_small_base_keeps_doubling_past_sixteen_tries_until_the_cap(mpy):
    # full jitter's bound at the 21st try is base * 2**20 (0.105 s for this
    # base), below the cap: of 10 waits some are past base * 2**16 (0.0066 s)
    # (all 10 below it: once in 16**10 runs)
    got = waits(mpy, [20] * 10, backoff=(1e-7, 0.2))
    assert all(0 <= w <= 0.105 for w in got) and any(w > 0.0066 for w in got), got


def test_after_a_billion_failed_tries_the_wait_is_still_drawn_up_to_the_cap(mpy):
    # a device that fails for years counts on: its backoff must not compute
    # 2 ** attempts (125 MB for this count), only the cap's bound
    got = waits(mpy, [10**9])
    assert len(got) == 1 and 0 <= got[0] <= 0.1, got


def test_a_session_that_lasted_exactly_stable_seconds_counts_as_stable(mpy):
    # began at 1000 s, failed at 1030 s with backoff.stable 30 s (the module's
    # clock fixed): after 3 failed tries, the next wait is the first one's again
    script = FAKE_RUNTIME + """
import time
from onboard import failed


class Clock:  # (the wait's ticks are the real ones)
    ticks_ms, ticks_add, ticks_diff = time.ticks_ms, time.ticks_add, time.ticks_diff

    def time():
        return 1030


failed.time = Clock


async def main():
    rt = Runtime(None)
    rt.state = "RUNNING"
    print(await failed.next_try(rt, 3, 0, 1000), rt.said[0]["attempt"])

asyncio.run(main())
"""
    assert mpy.run(script).stdout.split() == ["1", "1"]


def test_a_link_without_a_session_of_its_own_is_online_and_ends_with_no_retry(mpy):
    got = run_session(mpy, {})
    assert (got["retry"], got["said"], got["errors"]) == (None, ["online"], [])


def test_a_session_that_ended_by_itself_starts_the_count_of_failed_tries_again(mpy):
    # after 5 failed tries, one that went online and ended without a failure:
    # the next failure's backoff starts from the first again
    got = run_session(mpy, {}, attempt=5)
    assert (got["retry"], got["states"], got["said"]) == (0, ["CONNECTING_CLOUD"], ["online"])


def test_what_the_link_asks_to_store_is_stored(mpy):
    got = run_session(mpy, {"store": {"token": "t-1"}})
    assert got["stored"] == {"cloud": {"token": "t-1"}}


def test_a_renewed_link_says_so_once(mpy):
    assert run_session(mpy, {"renewed": True})["said"] == [{"renewed": True}, "online"]


def test_a_link_not_renewed_says_nothing_of_a_renewal(mpy):
    assert run_session(mpy, {"renewed": False})["said"] == ["online"]


def test_the_session_lets_go_of_the_time_sync_and_the_profiles_https_code(mpy):
    loaded = run_session(mpy, {})["loaded"]
    assert not {"onboard.timesync", "onboard.ahttp", "onboard.httpmsg"} & set(loaded), loaded


def test_a_link_whose_renewal_is_due_at_once_starts_the_profile_again_after_a_backoff(mpy):
    # (a session that comes back within 5 s waits a backoff first: no loop)
    got = run_session(mpy, {"renew_s": 0}, {})
    assert got["starts"] == 2
    assert [s if s == "online" else s["attempt"] for s in got["said"]] == ["online", 1, "online"]


def test_quick_sessions_in_a_row_count_up_the_backoff(mpy):
    # a cloud whose links are due at once, again and again, is tried ever
    # more slowly (each attempt's bound doubles), not every few seconds
    got = run_session(mpy, {"renew_s": 0}, {"renew_s": 0}, {"renew_s": 0}, {})
    assert [s if s == "online" else s["attempt"] for s in got["said"]] == [
        "online", 1, "online", 2, "online", 3, "online"]


def test_a_session_that_lasted_starts_the_count_of_quick_ones_again(mpy):
    # quick (due at once), one that lasts 6 s (past the 5 s of a quick one),
    # quick again: the backoff before the last is the first one's again
    got = run_session(mpy, {"renew_s": 0}, {"renew_s": 6}, {"renew_s": 0}, {})
    assert [s if s == "online" else s["attempt"] for s in got["said"]] == [
        "online", 1, "online", "online", 1, "online"]


def test_a_transient_failure_without_retry_after_is_702_and_a_retry_with_no_minimum(mpy):
    got = run_session(mpy, ("transient", ["activation"]))
    assert (got["retry"], got["errors"]) == (0, [702])


def test_a_transient_failure_with_retry_after_is_702_and_a_retry_no_sooner(mpy):
    got = run_session(mpy, ("transient", ["activation", 30]))
    assert (got["retry"], got["errors"]) == (30, [702])


def test_a_memory_error_is_raised_to_the_runtime_not_made_a_failure_of_the_cloud(mpy):
    # (the runtime shows 704 and reboots: a fragmented heap is mended by a reboot)
    run = mpy.run(session_script(("memory",)), check=False)
    # (MicroPython prints its traceback on stdout: nothing else came, no outcome, no retry)
    assert run.returncode != 0 and run.stdout.startswith("Traceback"), run.stdout
    assert run.stdout.strip().endswith("MemoryError:"), run.stdout


def test_a_memory_error_in_the_network_check_is_raised_to_the_runtime_not_read_as_a_lost_network(
        mpy):
    # the watcher's check of the station failing ends the session as a
    # failure of the session does: raised to the runtime (704, a reboot),
    # not a lost network (701) with the same short heap kept for the next try
    run = mpy.run(session_script({"renew_s": 60}).replace("""
class Station:  # joined, and it stays so
    def isconnected():
        return True
""", """
class Station:  # joined; its third check finds no room on the heap
    checks = 0

    def isconnected():
        Station.checks += 1
        if Station.checks == 3:
            raise MemoryError
        return True
""").replace("""
    retry = await (session.run(rt) if ATTEMPT is None else session.online(rt, ATTEMPT))
""", """
    try:
        retry = await session.go_online(rt)
    except MemoryError:
        retry = "MemoryError raised"
"""))
    got = json.loads(run.stdout.splitlines()[-1])
    assert (got["retry"], got["errors"], got["said"]) == ("MemoryError raised", [], ["online"])


def test_a_value_error_that_is_not_the_configs_is_702_and_retried(mpy):
    # (as a CoAP request too large for the gateway's announced size raises):
    # only the CA's or the device certificate's ValueError is the config's 700
    got = run_session(mpy, ("value", ["coap: too large"]))
    assert (got["retry"], got["errors"], got["setup"]) == (0, [702], False)


def test_a_refusal_without_a_code_is_703_and_setup_mode(mpy):
    got = run_session(mpy, ("rejected", ["activation"]))
    assert (got["retry"], got["errors"], got["setup"]) == (None, [703], True)


def test_a_refusal_with_a_code_and_fields_stores_them_and_shows_the_code(mpy):
    got = run_session(mpy, ("rejected", ["activation", 700, {"status": "gone"}]))
    assert (got["errors"], got["stored"]) == ([700], {"cloud": {"status": "gone"}})


def test_a_refusal_with_a_code_and_no_fields_shows_the_code_and_stores_nothing(mpy):
    # (Blynk with no token stored: Rejected("config", 700))
    got = run_session(mpy, ("rejected", ["config", 700]))
    assert (got["retry"], got["errors"], got["setup"], got["stored"]) == (None, [700], True, {})


TARGET_STORED = FAKE_RUNTIME + """
from onboard.cloud import REDIRECT


class Mqtt(Runtime):
    # what mqtt_session asks more of the runtime; the store counts its writes of "cloud"
    config = dict(Runtime.config, host="127.0.0.1", port=PORT, tls=False, timeout_s=5)
    online, outbox, on_message = False, [], None
    cloud_writes = 0

    def uid(self):
        return "redirected"


class Counting(Store):
    def put(self, section, **fields):
        Mqtt.cloud_writes += section == "cloud"
        super().put(section, **fields)


class Profile:
    # MQTT links to where the store says (home: the config's), each due for
    # renewal after 0.5 s and saying hello on a topic of its own, which comes
    # back to it: at the first, the cloud's redirect to TARGET (before its
    # renewal); the second (at TARGET) and third (from the store) run until
    # renewed; the fourth has no session and ends the run
    starts = 0

    async def start(rt):
        Profile.starts += 1
        if Profile.starts == 4:
            return {}
        c = rt.store.get("cloud")
        return {"mqtt": (USER, USER, c.get("host"), c.get("port"), c.get("tls")),
                "topics": [TOPIC], "hello": [(TOPIC, b"hello", False)], "renew_s": 0.5}

    def downlink(cloud, topic, msg):
        if Profile.starts == 1:
            return (REDIRECT, TARGET)


async def main():
    rt = Mqtt(Profile)
    rt.store = Counting()
    await session.run(rt)
    print(json.dumps({"starts": Profile.starts, "cloud_writes": Mqtt.cloud_writes,
                      "stored": rt.store.data, "errors": rt.errors}))

asyncio.run(main())
"""


def test_a_redirects_target_is_written_once_not_again_at_each_renewal(mpy, broker):
    # the target is stored as the session there goes online; the renewed
    # sessions after it (at the target, from the store) write nothing more
    user = "redirected-5ecret"
    broker.allow(user, user)
    target = {"host": "127.0.0.1", "port": broker.mqtt_port, "tls": False}
    script = (f"PORT = {broker.mqtt_port}\nUSER = {user!r}\nTOPIC = b'redirected/t'\n"
              f"TARGET = {target!r}\n" + TARGET_STORED)
    got = json.loads(mpy.run(script).stdout.splitlines()[-1])
    assert got["stored"]["cloud"] == {**target, "home": [None, None, None]}
    assert (got["starts"], got["errors"], got["cloud_writes"]) == (4, [], 1)


# On a whole simulated device ----------------------------------------------------------------

def test_a_broker_unavailable_for_now_is_702_and_retried_within_the_backoff(device, cloudsim):
    from test_faults import blynk_device, bound
    from test_profiles import configure

    broker = RefusingBroker(3)  # server unavailable
    try:
        d, fields = blynk_device(device, cloudsim, port=broker.port, tls=False)
        configure(d, **fields)
        retry = d.wait_note("retry_in")
    finally:
        broker.close()
    assert retry["last_error"] == 702
    assert 0 <= retry["retry_in"] <= bound(retry["attempt"])


def refusing_broker_at(port, context):
    """A RefusingBroker (server unavailable) at port on a loopback address of its own
    (127.0.0.x: MQTT's well-known ports are free there, and tests run side by side
    each find one), with TLS when context is a function(address) giving one."""
    import random

    for last in random.sample(range(2, 255), 30):
        where = (f"127.0.0.{last}", port)
        try:
            return RefusingBroker(3, context and context(where[0]), where=where)
        except OSError as e:
            error = e
    pytest.skip(f"nothing can listen at port {port} of 127.0.0.x on this machine: {error}")


def default_port_tried(device, cloudsim, port, tls):
    """A Blynk device whose config names no MQTT port, with TLS or not, its broker
    listening at port: how many logins the broker refused by the device's first retry."""
    import ssl

    from test_faults import blynk_device
    from test_profiles import configure

    def context(address):  # (a certificate naming the address, from the CA the device trusts)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(*cloudsim.ca.write_server(cloudsim.dir, f"at-{address}-{port}",
                                                    names=[], ips=[address]))
        return c

    broker = refusing_broker_at(port, tls and context)
    try:
        d, fields = blynk_device(device, cloudsim, host=broker.sock.getsockname()[0],
                                 port=None, tls=tls)
        configure(d, **fields)
        retry = d.wait_note("retry_in")
    finally:
        broker.close()
    assert retry["last_error"] == 702
    return broker.refused


def test_without_a_port_in_the_config_mqtt_over_tls_goes_to_8883(device, cloudsim):
    assert default_port_tried(device, cloudsim, 8883, tls=True) >= 1


def test_without_a_port_in_the_config_plain_mqtt_goes_to_1883(device, cloudsim):
    assert default_port_tried(device, cloudsim, 1883, tls=False) >= 1


def cloud_refusing_on_a_network_in_the_air(device, cloudsim, tries, **config):
    """A Blynk device whose broker refuses every login (server unavailable),
    on a network that stays in the air (config: the device's, beside a fast
    backoff): from its first cloud try to its retry number tries, each state
    it entered and each retry's attempt number, in order."""
    from test_faults import blynk_device
    from test_profiles import configure

    broker = RefusingBroker(3)
    try:
        d, fields = blynk_device(device, cloudsim, port=broker.port, tls=False,
                                 **{"backoff": {"base": 0.05, "cap": 0.1}, **config})
        configure(d, **fields)
        d.wait_state("CONNECTING_CLOUD")
        since = len(d.events) - 1
        d.wait_for(lambda e: e.get("attempt") == tries, f"retry {tries}")
    finally:
        broker.close()
    return [e["state"] if "retry_in" not in e else e["attempt"] for e in d.events[since:]]


def test_tries_that_never_went_online_keep_the_backoff_growing(device, cloudsim):
    # (backoff.stable 0: only having been online starts it again)
    got = cloud_refusing_on_a_network_in_the_air(device, cloudsim, 3,
                                                 backoff={"base": 0.05, "cap": 1, "stable": 0})
    assert got == ["CONNECTING_CLOUD", 1, 2, 3]


def test_after_rejoin_after_failed_tries_in_a_row_the_radio_starts_again_and_joins(device,
                                                                                  cloudsim):
    # (the station reads joined all along; one that passes nothing is not
    # told apart from a cloud that refuses, so both rejoin)
    got = cloud_refusing_on_a_network_in_the_air(device, cloudsim, 5, rejoin_after=2)
    assert got == ["CONNECTING_CLOUD", 1, 2, "CONNECTING_NET", "CONNECTING_CLOUD", 3, 4,
                   "CONNECTING_NET", "CONNECTING_CLOUD", 5]


def test_by_default_the_radio_starts_again_at_the_fifth_failed_try_in_a_row(device, cloudsim):
    got = cloud_refusing_on_a_network_in_the_air(device, cloudsim, 6)
    assert got == ["CONNECTING_CLOUD", 1, 2, 3, 4, 5, "CONNECTING_NET", "CONNECTING_CLOUD", 6]


def test_with_rejoin_after_0_the_device_stays_on_the_network_it_is_on(device, cloudsim):
    assert "CONNECTING_NET" not in cloud_refusing_on_a_network_in_the_air(device, cloudsim, 5,
                                                                          rejoin_after=0)


def test_a_session_the_broker_ends_logs_in_again_on_the_network_the_device_is_on(device,
                                                                                 cloudsim):
    # the Wi-Fi stayed up: the next login goes straight to the cloud; leaving the
    # network and joining it again would drop every other connection of the device
    from test_profiles import blynk_online

    d, prov = blynk_online(device, cloudsim)
    logins = cloudsim.front.logins["tls"]
    since = len(d.events)
    cloudsim.front.kick(int(prov["deviceId"]))
    d.wait_state("CONNECTING_CLOUD", timeout=60)
    d.wait_state("RUNNING", timeout=60)
    assert cloudsim.front.logins["tls"] == logins + 1
    assert "CONNECTING_NET" not in [e["state"] for e in d.events[since:]]


def kicked_twice(device, cloudsim, stable):
    """The attempt numbers of the retries after a Blynk session is ended by
    the broker twice, the second time once the device is online again."""
    from test_profiles import blynk_online

    d, prov = blynk_online(device, cloudsim, backoff={"base": 0.05, "cap": 60,
                                                      "stable": stable})
    attempts = []
    for _ in range(2):
        cloudsim.front.kick(int(prov["deviceId"]))
        attempts.append(d.wait_note("retry_in", timeout=60)["attempt"])
        d.wait_state("RUNNING", timeout=60)
    return attempts


def test_a_session_that_stayed_online_is_retried_as_a_first_failure(device, cloudsim):
    # backoff.stable 0: every session that went online stayed long enough, so
    # each drop starts the backoff again, not where the last outage left it
    assert kicked_twice(device, cloudsim, stable=0) == [1, 1]


def test_a_session_dropped_soon_after_its_login_keeps_the_backoff_growing(device, cloudsim):
    # (a broker that takes the login and then drops the device: no login storm)
    assert kicked_twice(device, cloudsim, stable=3600) == [1, 2]


def test_the_time_is_asked_before_the_first_session_only(device, cloudsim):
    # the clock is unknown at power on (on the Unix port too): the first
    # session sets it from the config's time source; once it is known, a later
    # session asks none
    from test_profiles import blynk_online

    asked = cloudsim.sntp.requests
    d, prov = blynk_online(device, cloudsim)
    assert cloudsim.sntp.requests == asked + 1
    cloudsim.front.kick(int(prov["deviceId"]))
    d.wait_state("CONNECTING_CLOUD", timeout=60)
    d.wait_state("RUNNING", timeout=60)
    assert cloudsim.sntp.requests == asked + 1
    assert "time unknown" not in d.log_path.read_text()


def test_with_no_time_source_answering_the_log_says_the_time_is_unknown(device, cloudsim):
    # (TLS then checks dates against the build time: the log says why)
    from test_profiles import blynk_config, configure, provision

    d = device(config={**blynk_config(cloudsim), "time": {"ntp": []}})
    configure(d, blynk=provision(cloudsim)["token"])
    d.wait_state("RUNNING")
    assert "time unknown: no time source answered" in d.log_path.read_text()


def test_a_session_that_outlives_its_cancel_is_cancelled_again(mpy):
    # setup mode asked for: the runtime cancels the session; one that goes on
    # (the cancel lost) must still end, or the device stays online for good
    run = mpy.run("""
        import asyncio
        from onboard import session
        class Station:
            def isconnected(self):
                return True
        class Runtime:
            setup_requested = False
            def station(self):
                return Station()
        cancels = []
        async def stubborn():
            while True:
                try:
                    await asyncio.sleep_ms(1000)
                except asyncio.CancelledError:
                    cancels.append(1)
                    if len(cancels) > 1:
                        raise
        async def main():
            rt = Runtime()
            task = asyncio.create_task(stubborn())
            asyncio.create_task(session.watch_network(rt, task))
            await asyncio.sleep_ms(10)
            rt.setup_requested = True
            task.cancel()  # request_setup's, which this session outlives
            for _ in range(100):
                if task.done():
                    break
                await asyncio.sleep_ms(20)
            print("ended" if task.done() else "still running", len(cancels))
        asyncio.run(main())
        """)
    assert run.stdout.split()[-2:] == ["ended", "2"]


def test_when_a_session_ends_so_has_its_network_watcher(mpy):
    # go_online's watcher must have ended when go_online returns: one still
    # queued ends later beside the main task, which keeps a link to it (see
    # Runtime.fresh_helpers), and through it the session's code, in RAM
    run = mpy.run(session_script({}).replace("""
    retry = await (session.run(rt) if ATTEMPT is None else session.online(rt, ATTEMPT))
""", """
    retry = await session.go_online(rt)
    from asyncio import core
    print("queued", core._task_queue.peek() is not None)
"""))
    assert "queued False" in run.stdout
