"""The product's own code (app.py on the flash) and the runtime: its start(rt)
hook gets the runtime, through which it hears the cloud's messages and
publishes its own. Seen on the broker's wire, a Blynk device on cloudsim."""

import pytest
from conftest import Subscription
from servers import Blackhole
from test_profiles import (
    admin,
    api,
    blynk_config,
    blynk_online,
    configure,
    provision,
    spokezone_device,
)

ECHO = """
def start(rt):
    def heard(topic, msg):
        rt.publish("ds/echo", topic + b"=" + msg)
    rt.on_message = heard
"""

QOS_2 = """
def start(rt):
    def heard(topic, msg):
        try:
            rt.publish("ds/two", msg, qos=2)
        except ValueError as e:
            rt.publish("ds/refused", str(e))
    rt.on_message = heard
"""

# publishes ds/big as the cloud's message "n qos c" says: n times the
# character c at that QoS; with the topic's 8 bytes (its length and
# "ds/big") and at QoS 1 the packet id's 2, in Blynk's count
BIG = """
def start(rt):
    def heard(topic, msg):
        n, qos, c = msg.decode().split()
        try:
            rt.publish("ds/big", c * int(n), qos=int(qos))
        except ValueError as e:
            rt.publish("ds/refused", str(e))
    rt.on_message = heard
"""


def with_app(tmp_path, app):
    """The first device's flash (the device fixture's folder for it), holding app.py."""
    flash = tmp_path / "device0" / "flash"
    flash.mkdir(parents=True)
    (flash / "app.py").write_text(app)


def answer(device, tmp_path, sim, app, payloads=("1",)):
    """A Blynk device whose flash holds app, configured and online, sent
    downlink/ds/led with each of payloads by the cloud: (its id, the first
    message it published on ds/# after that, as the broker saw it, and how
    many logins the broker's front took meanwhile)."""
    with_app(tmp_path, app)
    _, prov = blynk_online(device, sim)
    device_id, logins = prov["deviceId"], sim.front.logins["tls"]
    sent = Subscription(sim, f"blynk/{device_id}/ds/#")
    try:
        for payload in payloads:
            api(sim, "POST", "/_sim/downlink", {"cloud": "blynk", "device": device_id,
                                                "name": "ds/led", "payload": payload},
                admin(sim))
        return device_id, sent.messages(), sim.front.logins["tls"] - logins
    finally:
        sent.close()


def test_an_apps_start_hook_hears_the_clouds_messages_and_publishes_through_the_runtime(
        device, tmp_path, cloudsim):
    device_id, sent, _ = answer(device, tmp_path, cloudsim, ECHO)
    assert sent == [(f"blynk/{device_id}/ds/echo", b"downlink/ds/led=1")]


def test_an_apps_message_is_not_kept_by_the_broker_when_it_does_not_ask(device, tmp_path,
                                                                        cloudsim):
    # rt.publish's retain is False unless given: a retained message is sent
    # to a new subscriber first, so the marker comes first only if none was kept
    from cloudsim.mqttfront import publish

    device_id, sent, _ = answer(device, tmp_path, cloudsim, ECHO)
    topic = f"blynk/{device_id}/ds/echo"
    later = Subscription(cloudsim, topic)
    try:
        publish(cloudsim.broker.mqtt_port, *cloudsim.internal, topic, "marker")
        first = later.messages(1)[0]
    finally:
        later.close()
    assert first == (topic, b"marker")


def test_a_publish_with_a_qos_mqtt_does_not_carry_is_refused_at_the_apps_call(
        device, tmp_path, cloudsim):
    # (not queued to fail in the session later, which would drop the connection)
    device_id, sent, _ = answer(device, tmp_path, cloudsim, QOS_2)
    assert sent == [(f"blynk/{device_id}/ds/refused", b"qos: 0 or 1")]


@pytest.mark.parametrize("big", ["1017 0 x", "1015 1 x", "509 0 \u00e9"],
                         ids=["QoS 0", "QoS 1", "UTF-8 bytes"])
def test_a_message_over_blynks_1024_bytes_with_its_topic_is_refused_at_the_apps_call(
        device, tmp_path, cloudsim, big):
    # (Blynk's limit: sent, it would cost the device its connection)
    device_id, sent, _ = answer(device, tmp_path, cloudsim, BIG, payloads=(big,))
    assert sent == [(f"blynk/{device_id}/ds/refused", b"topic and msg: over 1024 bytes")]


@pytest.mark.parametrize("big", ["1016 0 x", "1014 1 x", "508 0 \u00e9"],
                         ids=["QoS 0", "QoS 1", "UTF-8 bytes"])
def test_a_message_of_blynks_1024_bytes_with_its_topic_goes_out(device, tmp_path, cloudsim,
                                                                 big):
    n, _, c = big.split()
    device_id, sent, logins = answer(device, tmp_path, cloudsim, BIG, payloads=(big,))
    assert (sent, logins) == ([(f"blynk/{device_id}/ds/big", c.encode() * int(n))], 0)


@pytest.mark.parametrize("app", [
    "def start(rt):\n    raise RuntimeError\n",
    "import onboard_no_such_module\n",  # (a module the product forgot to deploy)
    "raise ValueError\n",
    "from sys import start\n",  # (its own import of a start failed: not "an app without one")
], ids=["its start raises", "a module it imports is missing", "it raises at import",
        "its own import of a start fails"])
def test_an_app_that_raises_in_start_or_at_its_import_is_an_internal_error_704_kept_on_the_flash(
        app, device, tmp_path):
    # (an app whose import fails is neither skipped, the device online as if it had
    # none, nor stops the board before the runtime)
    with_app(tmp_path, app)
    d = device()
    assert d.wait_state("ERROR")["last_error"] == 704
    assert d.store()["state"]["last_error"] == 704  # (read back through Store)


RAISES_FIRST = """
def start(rt):
    heard = []
    def on_message(topic, msg):
        heard.append(msg)
        if len(heard) == 1:
            int("not a number")  # the product's own bug, once
        rt.publish("ds/echo", msg)
    rt.on_message = on_message
"""


def test_an_apps_message_hook_that_raises_leaves_the_session_on_for_the_next_message(
        device, tmp_path, cloudsim):
    device_id, sent, logins = answer(device, tmp_path, cloudsim, RAISES_FIRST, ("1", "2"))
    assert (sent, logins) == ([(f"blynk/{device_id}/ds/echo", b"2")], 0)


TASK = """
import asyncio

def start(rt):
    said = [rt.publish("ds/early", "before the device is online")]
    asyncio.create_task(hello(rt, said))

async def hello(rt, said):
    while not rt.publish("ds/hello", "online", qos=1):
        await asyncio.sleep_ms(100)  # (False until the device is online)
    for n in range(8):  # one more than the queue holds with hello in it, all at once
        said.append(rt.publish("ds/n", str(n), qos=1))
    while not rt.publish("ds/said", repr(said)):
        await asyncio.sleep_ms(100)  # (the session sends what waits meanwhile)
"""


def test_an_apps_task_publishes_through_a_queue_of_eight_and_is_told_false_when_offline_or_full(
        device, tmp_path, cloudsim):
    # (README's example: a task started in start; what rt.publish returns, seen on the broker)
    with_app(tmp_path, TASK)
    prov = provision(cloudsim)
    topic = f"blynk/{prov['deviceId']}/ds/"
    sent = Subscription(cloudsim, topic + "#", timeout=60)  # (a life)
    try:
        d = device(config=blynk_config(cloudsim))
        configure(d, blynk=prov["token"])
        got = sent.messages(9)
    finally:
        sent.close()
    said = b"[False, True, True, True, True, True, True, True, False]"
    assert got == ([(topic + "hello", b"online")] + [(topic + "n", b"%d" % n) for n in range(7)]
                   + [(topic + "said", said)])


ONCE_ONLINE = """
import asyncio
from onboard.clouds import spokezone

def start(rt):
    asyncio.create_task(hello(rt))

async def hello(rt):
    # (False until the device is online; its token, and so its prefix, from then)
    while not (rt.online and rt.publish(spokezone.topic(rt, "hello"), "online", qos=1)):
        await asyncio.sleep_ms(100)
"""


def test_an_apps_message_goes_out_while_the_sessions_renewal_is_days_away(device, tmp_path,
                                                                          cloudsim):
    # Spoke Zone's week-long token: the session waits for its renewal, and
    # looks at the app's queue meanwhile, not only at the renewal or when a
    # message comes in (none does here)
    with_app(tmp_path, ONCE_ONLINE)
    d, fields, dev = spokezone_device(device, cloudsim, "cpu-app")
    topic = f"mrs/d/{dev['id']}/hello"  # (under the token's prefix)
    sent = Subscription(cloudsim, topic)
    try:
        configure(d, **fields)
        got = sent.messages()
    finally:
        sent.close()
    assert got == [(topic, b"online")]


BURST = """
import asyncio, os

def start(rt):
    asyncio.create_task(on_cue(rt))

async def on_cue(rt):
    # the test's cue: a file it makes on the flash, gone once acted on
    while True:
        await asyncio.sleep_ms(50)
        for cue, count in (("burst", 8), ("after", 1)):
            try:
                os.remove(cue)
            except OSError:
                continue
            for n in range(count):
                rt.publish("ds/" + cue, str(n), qos=1)
"""


def test_messages_a_failed_session_left_unsent_are_not_sent_by_the_next_one(device, tmp_path,
                                                                           cloudsim):
    # "nothing is kept for later": eight queued while the link had gone
    # silent, the first waiting for its PUBACK until the session failed;
    # after the device is back, the first message the broker gets from it
    # is the one published then, none of the eight
    with_app(tmp_path, BURST)
    relay = Blackhole(cloudsim.front.tls_port)
    sent = None
    try:
        d, prov = blynk_online(device, cloudsim, port=relay.port, timeout_s=2,
                               backoff={"base": 0.05, "cap": 0.1})
        sent = Subscription(cloudsim, f"blynk/{prov['deviceId']}/ds/#", timeout=60)
        relay.silent.set()
        (tmp_path / "device0" / "flash" / "burst").write_text("")
        assert d.wait_for(lambda e: "retry_in" in e, "the session's end")["last_error"] == 702
        relay.silent.clear()
        d.wait_state("RUNNING")
        (tmp_path / "device0" / "flash" / "after").write_text("")
        first = sent.messages()[0]
    finally:
        relay.close()
        if sent:
            sent.close()
    assert first == (f"blynk/{prov['deviceId']}/ds/after", b"0")
