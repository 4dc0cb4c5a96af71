"""How a Spoke Zone device (onboard.clouds.spokezone) takes each answer to its
renewal (POST /loginDevice of a token with 11 h left), seen from the
simulator's request log, the device's events and its flash: a request the
server calls wrong (400, 404, 499) is last_error 700 and not sent again,
refused credentials (401, 403) are 703, a timeout, a busy server or a new
token that does not check is tried again, which then renews (online with the
old token meanwhile, unless it would end first); "still valid"
keeps the token. When the next renewal is due, as stored beside the token:
12 h before a new token's expiry (10 min before when it lives less), halfway
to that when the server called the old one still valid, also when the time
was unknown until the renewal's Date. A stored record missing its token or uuid is 700."""

from collections import namedtuple

import pytest
from test_allthingstalk_assets import edit_cloud, online_or_setup
from test_portal import free_port
from test_profiles import admin, api, configure
from test_spokezone import HOUR, PATH, WEEK, make, renewals

from cloudsim import jwt

Renewal = namedtuple("Renewal", "d fields dev before end events")

FAST_RETRY = {"backoff": {"base": 0.05, "cap": 0.1}}  # retries at once: no waiting in tests


@pytest.fixture
def sim(cloudsim):
    yield cloudsim
    api(cloudsim, "DELETE", "/_sim/faults", None, admin(cloudsim))


def renew_against(device, sim, fault, cpu):
    """A device whose token has 11 h left, its first renewal answered by
    fault, run until online or back in setup mode: a Renewal (the device,
    the fields it was given, the device as the simulator has it, renewals
    before, the state it ended in, its events since it was configured)."""
    d, fields, dev, _ = make(device, sim, lifetime=11 * HOUR, cpu=cpu, **FAST_RETRY)
    api(sim, "POST", "/_sim/faults", {"path": PATH, "method": "POST", **fault}, admin(sim))
    before = renewals(sim)
    configure(d, **fields)
    events = []
    end = d.wait_for(lambda e: events.append(e) or e["state"] in ("RUNNING", "WAIT_CONFIG"),
                     "online or setup mode")
    return Renewal(d, fields, dev, before, end, events)


@pytest.mark.parametrize("status,last_error", [(400, 700), (404, 700), (499, 700),
                                               (401, 703), (403, 703)])
def test_a_renewal_the_server_calls_wrong_or_refuses_ends_in_setup_mode_unretried(
        device, sim, status, last_error):
    d, fields, _, before, end, _ = renew_against(
        device, sim, {"kind": "status", "status": status}, f"cpu-sz-{status}")
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", last_error)
    assert renewals(sim) == before + 1
    assert d.store()["cloud"]["token"] == fields["token"]


def renewed_after_going_online(r):
    """r's device went online with its old token (the renewal had failed),
    then renewed it: the note of the renewal, which came after."""
    assert r.end["state"] == "RUNNING"
    assert [e for e in r.events if "renewed" in e or "retry_in" in e] == []
    return r.d.wait_note("renewed")


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_a_renewal_answered_with_a_timeout_or_busy_server_goes_online_then_renews(
        device, sim, status):
    # the token still has 11 h: the session goes on with it, and the renewal
    # comes again after the backoff's cap (MRS's SDK keeps its connection too)
    r = renew_against(device, sim, {"kind": "status", "status": status}, f"cpu-sz-{status}")
    renewed_after_going_online(r)
    assert renewals(sim) == r.before + 2
    assert r.d.store()["cloud"]["token"] != r.fields["token"]


def test_a_new_token_that_does_not_check_is_not_stored_and_the_renewal_is_retried(device, sim):
    fault = {"kind": "shape", "status": 201, "body": {"token": "not.a-token.at-all"}}
    r = renew_against(device, sim, fault, "cpu-sz-shape")
    renewed_after_going_online(r)
    assert renewals(sim) == r.before + 2
    assert r.d.store()["cloud"]["token"] == sim.clouds["spokezone"].devices[r.dev["id"]]["token"]


def test_the_log_names_the_renewal_when_its_new_token_does_not_check(device, sim):
    fault = {"kind": "shape", "status": 201, "body": {"token": "not.a-token.at-all"}}
    r = renew_against(device, sim, fault, "cpu-sz-shape-log")
    renewed_after_going_online(r)
    r.d.stop()  # all it logged is in the file
    log = r.d.log_path.read_text()
    assert "renewal failed: the token still works" in log
    assert "unexpected" not in log


def test_while_the_api_is_down_the_device_stays_online_with_its_token_and_asks_again(
        device, sim):
    r = renew_against(device, sim, {"kind": "status", "status": 503, "count": -1},
                      "cpu-sz-api-down")
    assert r.end["state"] == "RUNNING"
    for _ in range(3):  # a session with the token after each renewal that failed
        r.d.wait_note("online")
    assert renewals(sim) >= r.before + 3
    assert r.d.store()["cloud"]["token"] == r.fields["token"]
    states = [e["state"] for e in r.d.events]
    assert set(states[states.index("RUNNING"):]) == {"RUNNING"}  # online throughout


def test_a_token_too_near_its_end_is_not_used_when_its_renewal_fails(device, sim):
    # it would end before the next renewal: the session fails and is retried
    # as any other, never online with a token about to end
    d, fields, _, _ = make(device, sim, lifetime=1, cpu="cpu-sz-near-end", **FAST_RETRY)
    api(sim, "POST", "/_sim/faults", {"path": PATH, "method": "POST", "kind": "status",
                                      "status": 503}, admin(sim))
    before = renewals(sim)
    configure(d, **fields)
    first = d.wait_for(lambda e: e["state"] == "RUNNING" or "retry_in" in e,
                       "online or a retry")
    assert "retry_in" in first
    d.wait_note("renewed")
    assert renewals(sim) == before + 2


STILL_VALID = {"kind": "shape", "status": 200, "body": {"message": "token still valid"}}


def test_a_renewal_answered_still_valid_keeps_the_token_and_reports_no_renewal(device, sim):
    r = renew_against(device, sim, STILL_VALID, "cpu-sz-valid")
    assert r.end["state"] == "RUNNING"
    assert renewals(sim) == r.before + 1
    assert r.d.store()["cloud"]["token"] == r.fields["token"]
    assert [e for e in r.events if "renewed" in e] == []


def test_a_token_the_server_calls_still_valid_is_asked_for_again_halfway_to_its_end(device, sim):
    # asked with 11 h left: next at about 5 h 25 min left (halfway to 10 min
    # before expiry), not 10 min before it, so a server unreachable then
    # leaves hours to renew in. The device asked at a second between the
    # simulator's clock before and after (its clock set from the simulator's)
    first = int(sim.now()) - 1
    r = renew_against(device, sim, STILL_VALID, "cpu-sz-valid-next")
    last = int(sim.now()) + 1
    exp = jwt.decode(r.fields["token"], sim.clouds["spokezone"].key)["exp"]
    renew = r.d.store()["cloud"]["renew"]
    assert renew[0] == exp
    assert (first + exp - 600) // 2 <= renew[1] <= (last + exp - 600 + 1) // 2


def asked_until_past(d, fields, end, most):
    """Configure d with fields; the renewal schedules it stores ([exp, at]),
    one per ask (at boot, then each time it is back online without leaving
    RUNNING), until one is past end; fewer than `most` of them."""
    configure(d, **fields)
    d.wait_state("RUNNING")
    stored = [d.store()["cloud"]["renew"]]
    while stored[-1][1] <= end:
        d.wait_note("online", timeout=60)
        stored.append(d.store()["cloud"]["renew"])
        assert len(stored) < most
    return stored


def test_each_still_valid_answer_halves_the_wait_then_none_comes_at_once(device, sim):
    # the server calls the token still valid whenever it is asked: the device
    # asks again at each stored time, and stores the next one halfway to 10 s
    # before the end of its 30 s token; asked at or after that, 10 s after the
    # ask (the least wait; half that margin is 5 s), not at once again
    d, fields, _, _ = make(device, sim, lifetime=30, cpu="cpu-sz-valid-halves")
    api(sim, "POST", "/_sim/faults",
        {"path": PATH, "method": "POST", **STILL_VALID, "count": -1}, admin(sim))
    exp = jwt.decode(fields["token"], sim.clouds["spokezone"].key)["exp"]
    end = exp - 10
    stored = asked_until_past(d, fields, end, 12)
    assert all(e == exp for e, _ in stored)
    ats = [at for _, at in stored]
    assert ats[0] < end and ats == sorted(ats)
    # each next time halfway between the ask (at or after the time before) and the end
    halves = ats[:-1]
    assert all(end - b <= (end - a) // 2 for a, b in zip(halves, halves[1:]))
    assert ats[-1] >= max(end, ats[-2]) + 10  # asked at or after the end: 10 s after the ask


def test_a_renewal_answered_with_a_token_near_its_end_is_not_asked_again_at_once(device, sim):
    # the server "renews" with the device's own 30 s token whenever asked
    # (a cached answer): once that token is within 10 s of its end, the next
    # ask is 10 s after this one (the least wait), not at once again and again
    d, fields, _, _ = make(device, sim, lifetime=30, cpu="cpu-sz-same-token")
    api(sim, "POST", "/_sim/faults", {"path": PATH, "method": "POST", "kind": "shape",
                                      "status": 201, "body": {"token": fields["token"]},
                                      "count": -1}, admin(sim))
    exp = jwt.decode(fields["token"], sim.clouds["spokezone"].key)["exp"]
    end = exp - 10
    stored = asked_until_past(d, fields, end, 6)
    assert stored[-1][1] >= max(end, stored[-2][1]) + 10


def test_the_date_of_a_plain_http_api_does_not_set_the_clock(device, sim):
    # an api configured as plain http:// answers the renewal "still valid"
    # with a Date in 2041: an unverified server's Date must not move the clock
    # (DESIGN: only verified ones refine it). The next ask is then stored
    # halfway to 10 min before the token's end by the true time, not at once
    # by a clock 15 years ahead
    from servers import Server, reply

    plain = Server(reply(b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Jan 2041 00:00:00 GMT\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"))
    try:
        d, fields, _, _ = make(device, sim, lifetime=11 * HOUR, cpu="cpu-sz-plain-api",
                               api=f"http://127.0.0.1:{plain.port}/spokezone")
        configure(d, **fields)
        d.wait_state("RUNNING")
    finally:
        plain.close()
    assert plain.received[0].startswith(b"POST /spokezone/loginDevice ")
    exp = jwt.decode(fields["token"], sim.clouds["spokezone"].key)["exp"]
    assert exp - 11 * HOUR < d.store()["cloud"]["renew"][1] < exp - 600


@pytest.mark.parametrize("drop", ["uuid", "token"])
def test_a_stored_record_missing_its_uuid_or_token_is_last_error_700(device, sim, mpy, drop):
    d, fields, _, config = make(device, sim)
    configure(d, **fields)
    d.wait_state("RUNNING")
    d.kill()
    edit_cloud(mpy, d, **{drop: None})
    again = device(same_as=d, config=config)
    end = online_or_setup(again)
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)


def renewed_schedule(device, sim, cpu, issued=WEEK, **config):
    """A device whose token has 11 h left, renewed at boot to a token that
    lives issued seconds: (the stored token, the stored renewal schedule,
    the new token's expiry)."""
    d, fields, _, _ = make(device, sim, lifetime=11 * HOUR, cpu=cpu, **config)
    sim.lifetimes["spokezone"] = issued
    try:
        configure(d, **fields)
        d.wait_state("RUNNING")
    finally:
        sim.lifetimes["spokezone"] = WEEK
    cloud = d.store()["cloud"]
    assert cloud["token"] != fields["token"]
    exp = jwt.decode(cloud["token"], sim.clouds["spokezone"].key)["exp"]
    return cloud["token"], cloud["renew"], exp


def test_a_renewed_token_is_due_for_renewal_12_h_before_its_own_expiry(device, sim):
    _, renew, exp = renewed_schedule(device, sim, "cpu-sz-next")
    assert renew == [exp, exp - 12 * HOUR]


def nowhere():
    """Time sources that do not answer (ports nothing listens on)."""
    return {"ntp": [f"127.0.0.1:{free_port()}"], "http": f"http://127.0.0.1:{free_port()}/"}


def test_with_the_time_unknown_the_schedule_comes_from_the_renewals_date(device, sim):
    # no time source answers: the renewal goes out at once and its Date sets the clock
    _, renew, exp = renewed_schedule(device, sim, "cpu-sz-no-time", time=nowhere())
    assert renew == [exp, exp - 12 * HOUR]


def test_with_the_time_still_unknown_after_the_renewal_it_is_due_10_min_before_expiry(
        device, sim):
    # no time source answers and the server's Date is a year before the
    # firmware was built, which the clock does not take: the new token is
    # renewed next near its end (10 min before), from its own claims alone
    api(sim, "POST", "/_sim/clock", {"advance": -400 * 24 * HOUR}, admin(sim))
    try:
        _, renew, exp = renewed_schedule(device, sim, "cpu-sz-no-time-after", time=nowhere())
    finally:
        api(sim, "POST", "/_sim/clock", {"reset": True}, admin(sim))
    assert renew == [exp, exp - 600]


def test_a_renewed_token_living_under_12_h_is_due_10_min_before_its_expiry(device, sim):
    _, renew, exp = renewed_schedule(device, sim, "cpu-sz-short", issued=11 * HOUR)
    assert renew == [exp, exp - 600]
