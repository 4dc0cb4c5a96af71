# Going online, loaded only while the device does: the Wi-Fi join and the
# cloud session (the profile's link, the MQTT session, the outcomes turned
# into states and store writes). What a failure means and the backoff before
# the next try are onboard.failed's, loaded when one comes. The runtime lets
# go of this module (and of MQTT, TLS and the rest it loads) once it returns.
import asyncio
import time
from micropython import const

from onboard import clock, log
from onboard.runtime import forget, loaded, new_since

# onboard.codes' values, folded in at compile time (the module is not loaded)
_CONNECTING_NET = const("CONNECTING_NET")
_CONNECTING_CLOUD = const("CONNECTING_CLOUD")
_ERR_NETWORK = const(701)
_TAG = const("runtime")
# the longest wait before a renewal: ticks_add() refuses more than 2**29 ms (6.2
# days) on the ESP32, less than a 7-day token's wait; a renewal comes early instead
_MAX_WAIT_MS = const(1 << 28)
_QUICK_MS = const(5000)


async def online(rt, attempt):
    """CONNECTING_NET, then one cloud session, then the wait before the next
    try when one is due; the attempt count that follows."""
    sta = rt.station()
    # settings from setup mode not joined yet (fresh) are joined even while
    # the station is still on a network: join() leaves it first
    joined = sta.isconnected() and not rt.fresh
    if not joined:
        rt.set_state(_CONNECTING_NET)
        from onboard import wifijoin  # (and onboard.wifi, which it uses)

        try:
            joined = await wifijoin.for_device(rt, sta)
        finally:
            # not needed again until the link is lost (the runtime uses the
            # station); a coroutine's local would hold the module for good
            del wifijoin
            forget("wifi", "wifijoin")
    # setup mode asked for (a press, the reset; during the join too), or new
    # credentials that did not join (setup mode shows the user why): no session
    if rt.setup_requested or not joined and rt.fresh:
        rt.setup_requested = True
        return attempt
    if not joined:
        retry_after = began = 0
    else:
        rt.set_state(_CONNECTING_CLOUD)
        began = time.time()
        retry_after = await go_online(rt)
        if retry_after is None:
            return 0
    from onboard.failed import next_try  # (going online failed: loaded for it)

    return await next_try(rt, attempt, retry_after, began)


async def go_online(rt):
    """One cloud session, awaited as a task that a setup request or a
    lost network cancels at once. None when it ended by itself
    (reconfigure, redirect) or the credentials were refused; else the
    Retry-After seconds (0: none) before the next try."""
    before = loaded()
    task = asyncio.create_task(run(rt))
    rt.session = task
    watch = asyncio.create_task(watch_network(rt, task))
    try:
        return await task
    except asyncio.CancelledError:
        if rt.setup_requested:
            return None
        failed = await watch  # (the session has ended: so does its watcher)
        if failed:
            raise failed from None  # its check failed, not the network: the runtime's (704)
        log.warn(_TAG, "network lost")
        if rt.trial():
            from onboard.trial import end

            end(rt, _ERR_NETWORK)
            return None
        rt.set_error(_ERR_NETWORK)
        return 0
    finally:
        rt.session = None
        watch.cancel()
        # and wait for it to end: a watcher still pending when this returns
        # ends later in the queue beside the main task, which then keeps a
        # link to it (see Runtime.fresh_helpers), and through its coroutine
        # this module stays in RAM through the next setup mode
        try:
            await watch
        except BaseException:  # noqa: BLE001  (its end, however it comes, is what is awaited)
            pass
        task = watch = None
        forget(*new_since(before))  # the session's code (MQTT, TLS) leaves RAM


async def watch_network(rt, task):
    # ends the session when the network is lost or setup mode is asked for,
    # sending the cancel again until the session has ended: one the session
    # outlived (seen in CI: a press of the button left the device RUNNING,
    # its session never cancelled) would otherwise leave it online for good.
    # A check that fails (a MemoryError on a short heap) ends the session too:
    # this task ended by it would leave the session unwatched for good.
    # Returns that failure: go_online raises it (a reboot mends a short heap)
    failed = None
    try:
        while rt.station().isconnected() and not rt.setup_requested:
            await asyncio.sleep_ms(100)
    except Exception as e:  # noqa: BLE001
        failed = e
    while not task.done():
        task.cancel()
        await asyncio.sleep_ms(100)
    return failed


def session_tls(rt):
    """The cloud's one TLS context, against the config's CA: the runtime
    makes it before going online (Runtime.make_tls); made here (and kept)
    only when that failed, so that the failure is the session's to report.
    The profile's HTTPS and the MQTT of every session share it."""
    if rt.ctx is None:
        from onboard.cloudtls import context

        rt.ctx = context(rt)  # (which lets go of its code)
    return rt.ctx


async def run(rt):
    """One session of the profile; None when it ended by itself, else what
    onboard.failed (loaded when a session fails) made of its failure."""
    try:
        if not clock.is_known():
            if not await clock.sync(rt.config):
                # TLS will check dates against the build time; SNTP again next time
                log.warn(_TAG, "time unknown: no time source answered")
            forget("timesync", "httpdate")
        await serve(rt)
        return None
    except MemoryError:
        raise  # not the cloud's doing: a fragmented heap is mended by a reboot (704)
    except Exception as e:  # noqa: BLE001  (onboard.failed sorts them)
        from onboard.failed import outcome

        return outcome(rt, e)


async def serve(rt):
    """Start the profile's link, store what it checked, stay online until
    renewal is due (then again) or an outcome ends the session."""
    from onboard import cloud

    profile = rt.profile
    began = to = None  # to: a redirect's target, not stored until it has worked
    quick = 0  # sessions in a row that ended within _QUICK_MS of their start
    while True:
        if began is not None:
            # one that came back at once (a redirect to where it was, a token
            # renewed to one due again, a cloud that keeps asking for it):
            # the next after a backoff, growing, not in a loop of requests,
            # logins and flash writes
            if time.ticks_diff(time.ticks_ms(), began) < _QUICK_MS:
                from onboard.failed import wait_retry

                await wait_retry(rt, quick, 0)
                del wait_retry  # (its module leaves RAM: not held through the next session)
                forget("failed")
                quick += 1
            else:
                quick = 0
        began = time.ticks_ms()
        link = await profile.start(rt)
        # its HTTPS is over until the next renewal
        forget("cloudapi", "ahttp", "httpmsg", "redirect", "chunked")
        if link.get("store"):
            rt.store.put("cloud", **link["store"])  # before it is used
        if link.get("renewed"):
            rt.note(renewed=True)
        renew_s = link.get("renew_s")
        due = None if renew_s is None else time.ticks_add(
            time.ticks_ms(), min(int(renew_s * 1000), _MAX_WAIT_MS))
        if link.get("serve"):  # a session of the profile's own (plgd's CoAP)
            outcome = await link["serve"]
            if outcome is None:
                continue  # its renewal is due
        elif link.get("mqtt"):
            outcome = await mqtt_session(rt, link, due, to)
            to = None  # (stored once it worked)
            # the client's code leaves RAM before a renewal's HTTPS comes in
            forget("amqtt", "mqttbase")
        else:
            rt.now_online()
            outcome = None
            while due is not None and time.ticks_diff(due, time.ticks_ms()) > 0:
                await asyncio.sleep_ms(min(1000, time.ticks_diff(due, time.ticks_ms())))
        if outcome is None:
            if due is None:
                return  # nothing more to do
            continue  # renewal due
        kind = outcome[0]
        if kind == cloud.RECONFIGURE:
            rt.setup_requested = True
            return
        if kind == cloud.REBOOT:
            log.info(_TAG, "reboot asked by the cloud")
            rt.board.reboot()
            return
        if kind == cloud.REDIRECT:  # (None: back from a target that failed)
            to = outcome[1]
            rt.set_state(_CONNECTING_CLOUD)


async def mqtt_session(rt, link, due, to=None):
    """Connect, subscribe, say hello and serve the link until renewal is
    due (None) or a downlink ends the session (its outcome). to: a
    redirect's target (cloud fields host, port, tls) instead of the link's.
    A redirect is stored once a session at its target is online, with where
    the device was before (home); a session at a redirect's target (stored
    or not) that fails before it is online returns (REDIRECT, None), after
    going back home in the store: the next try where the redirect came from
    (real Blynk keeps a redirect in RAM only, so a reboot goes back there)."""
    from onboard.amqtt import MQTTClient, MQTTException
    from onboard.cloud import HANDLED, PUBLISH, REDIRECT, Rejected, Transient

    # the profile's MQTT client: link["mqtt"] is (user, password, host, port,
    # tls), each of the last three None for the config's; TLS against the
    # config's CA unless "tls" is false; timeout_s from the config, keepalive_s
    # too (else the link's keepalive, else the 45 s Blynk recommends); no port
    # anywhere: the client's own, 8883 with TLS and 1883 without
    user, password, host, port, tls = link["mqtt"]
    cloud = rt.store.get("cloud")
    if to:
        host, port, tls = to["host"], to["port"], to["tls"]
    cfg = rt.config
    ctx = None
    if (cfg.get("tls", True) if tls is None else tls) is not False:
        ctx = session_tls(rt)
    client = MQTTClient(rt.uid(), host or cfg["host"], port or cfg.get("port", 0),
                        user=user, password=password,
                        keepalive=cfg.get("keepalive_s", link.get("keepalive", 45)),
                        ssl=ctx, timeout=cfg.get("timeout_s", 10))
    got = []

    def arrived(topic, msg):
        outcome = rt.profile.downlink(cloud, topic, msg)
        if outcome:
            if client.retained:  # pyright: ignore  (set by mqttbase.parse before this call)
                # a command the broker kept would act again at every login (a
                # retained reboot: a reboot loop); acted on only as it is sent
                log.warn(_TAG, "retained command ignored")
                return
            if outcome[0] == REDIRECT and ctx and outcome[1].get("tls") is False:
                # never from TLS to plain MQTT on a message's word: the token would
                # then travel in the clear (real Blynk sends a TLS session mqtts://)
                log.warn(_TAG, "redirect to plain MQTT ignored")
                return
        else:
            if rt.on_message:
                rt.on_message(topic, msg)
            else:
                rt.note(message=topic.decode())
                echo = getattr(rt.profile, "echo", None)
                answer = echo and echo(cloud, topic, msg)
                if answer:
                    outcome = (PUBLISH,) + answer
        if outcome and outcome[0] != HANDLED:
            got.append(outcome)

    client.set_callback(arrived)
    try:
        try:
            await client.aconnect()
        except MQTTException as e:
            if e.args and e.args[0] in (4, 5):
                raise Rejected("mqtt") from None
            raise Transient("mqtt", 0) from None
        for topic in link.get("topics", ()):
            await client.asubscribe(topic, 1)
        for topic, msg, retain in link.get("hello", ()):
            await client.apublish(topic, msg, retain, 1)
        if to:  # a redirect's target that works: stored, with home
            if "home" not in cloud:
                to["home"] = [cloud.get("host"), cloud.get("port"), cloud.get("tls")]
            rt.store.put("cloud", **to)
        rt.outbox = []
        rt.online = True
        rt.now_online()
        while True:
            while rt.outbox:
                await client.apublish(*rt.outbox.pop(0))
            while got:
                outcome = got.pop(0)
                if outcome[0] != PUBLISH:
                    return outcome
                await client.apublish(outcome[1], outcome[2], False, 1)
            wait = 1000
            if due is not None:
                wait = min(wait, time.ticks_diff(due, time.ticks_ms()))
                if wait <= 0:
                    return None
            await client.await_msg(wait)
    except Exception as e:
        home = cloud.get("home")
        if rt.online or not (to or home) or isinstance(e, MemoryError):
            raise
        # a redirect's target that failed before the session was online
        # (unreachable, refusing, dropping the device): where it came from
        # next; a refused token stays refused (703)
        log.warn(_TAG, "redirect's target failed: back")
        if not to:
            rt.store.put("cloud", host=home[0], port=home[1], tls=home[2], home=None)
        if isinstance(e, Rejected):
            raise
        return (REDIRECT, None)
    finally:
        rt.online = False
        client.disconnect()

