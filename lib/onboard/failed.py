# Going online failed: what the session's failure means (its last_error, and
# whether setup mode opens or a retry comes), and the wait before the next
# try. Loaded by onboard.session only when joining or a session failed, and
# let go of with the session's code: a device online holds none of it.
import asyncio
import time
from micropython import const

from onboard import log

# onboard.codes' values, folded in at compile time (the module is not loaded)
_ERR_CONFIG = const(700)
_ERR_CLOUD = const(702)
_ERR_TOKEN = const(703)
_ERR_DNS = const(710)
_ERR_TLS = const(711)
_TAG = const("runtime")
_RUNNING = const("RUNNING")


def outcome(rt, e):
    """A session's failure e, turned into states, errors and store writes;
    the Retry-After seconds (0: none) before the next try, or None when
    there is none (setup mode). Whatever goes wrong with a cloud's reply is
    transient: the credentials stay as they are and the device never
    reboots for it."""
    from onboard.cloud import Rejected, Transient

    code = _ERR_CLOUD
    retry = 0
    if isinstance(e, Rejected):
        log.warn(_TAG, "credentials refused at %s", e.args[0])
        code = e.args[1] if len(e.args) > 1 else _ERR_TOKEN
        if not rt.trial():
            if len(e.args) > 2:
                rt.store.put("cloud", **e.args[2])
            rt.set_error(code)
            rt.setup_requested = True
            return None
    elif isinstance(e, Transient):
        log.warn(_TAG, "cloud: %s failed, will retry", e.args[0])
        retry = e.args[1] if len(e.args) > 1 else 0
    elif isinstance(e, ValueError) and str(e).split(":")[0] in ("ca", "cert, key"):
        # the CA or the device's certificate does not load or cannot be read
        # (onboard.ca, onboard.cloudtls): the config's, named; tried again,
        # as its file may be copied or replaced
        log.error(_TAG, "config: %s", str(e))
        code = _ERR_CONFIG
    elif isinstance(e, OSError):
        # the error kinds, loaded when a session fails (else never)
        from onboard.errors import DNSError, NetError, TLSError

        log.warn(_TAG, "cloud: %s", str(e) if isinstance(e, NetError) else "network error")
        code = _ERR_TLS if isinstance(e, TLSError) else _ERR_DNS if isinstance(e, DNSError) \
            else _ERR_CLOUD
    else:  # a reply nobody expected: try again later
        log.warn(_TAG, "cloud: unexpected %s, will retry", type(e).__name__)
    if rt.trial():
        # new settings that did not reach the cloud: a refusal ends their
        # trial at once; a failure that may pass (a server's error, a
        # timeout, a broker down) is tried again for trial_s seconds after
        # the first (one window of Blynk.Edgent's logins, 50 s; Edgent goes
        # on with such windows for hours), unless the cloud's Retry-After is
        # longer. Then the working ones again, and setup mode shows why.
        t = rt.store
        if t.since is None:
            t.since = time.ticks_ms()
        if isinstance(e, Rejected) or time.ticks_diff(time.ticks_ms(), t.since) \
                + retry * 1000 >= rt.config.get("trial_s", 50) * 1000:
            from onboard.trial import end

            end(rt, code)
            return None
    rt.set_error(code)
    return retry


async def wait_retry(rt, attempt, retry_after):
    """Sleep the full-jitter exponential backoff (uniform in [0, min(cap,
    base * 2**attempt)]), and at least Retry-After."""
    import random

    base, cap, _ = rt.backoff
    top = min(cap, base * 2.0 ** attempt)  # (a float: inf past its range, never a big int)
    delay = max(random.getrandbits(20) / (1 << 20) * top, retry_after)
    log.info(_TAG, "retry in %d ms (attempt %d)", int(delay * 1000), attempt + 1)
    rt.note(retry_in=delay, attempt=attempt + 1)
    # in steps: a press of the button (setup_requested) ends the wait, as it
    # ends a session (no session is under way to cancel here)
    stop = time.ticks_add(time.ticks_ms(), int(delay * 1000))
    while not rt.setup_requested:
        left = time.ticks_diff(stop, time.ticks_ms())
        if left <= 0:
            break
        await asyncio.sleep_ms(min(left, 100))


async def next_try(rt, attempt, retry_after, began):
    """After a failed try (attempt: the failed ones in a row before it;
    began: time.time() when its cloud session began, 0 when the join
    failed): the backoff, then the count that follows. A session that got
    online and lasted backoff.stable s counts as the first failure again;
    one dropped soon after its login still grows it (no login storm).
    Every rejoin_after failed tries in a row the radio is turned off and on,
    so that the next try joins afresh: a station that reads joined may pass
    nothing (a stale address, a radio that hears no more), and one that
    hears nothing does not find its network again until its radio restarts."""
    if began and rt.state == _RUNNING and time.time() - began >= rt.backoff[2]:
        attempt = 0
    await wait_retry(rt, attempt, retry_after)
    attempt += 1
    n = rt.config.get("rejoin_after", 5)
    if n and not attempt % n:
        log.warn(_TAG, "%d tries failed: the radio starts again", attempt)
        from onboard.wifi import leave

        sta = rt.station()
        await leave(sta)  # (left first: a station reads joined until its leaving is handled)
        sta.active(False)
        sta.active(True)
    return attempt
