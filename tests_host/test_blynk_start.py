"""The Blynk profile's start (onboard.clouds.blynk) on a simulated device,
seen from the simulator's request log, the device's state and its flash:
how each answer to the activation is taken, what the info message tells the
cloud (and that the broker does not keep it), and a stored record without a
token."""

import json

import pytest
from conftest import Subscription
from servers import eventually
from test_allthingstalk_assets import edit_cloud, online_or_setup
from test_blynk_app import ACTIVATION, activations
from test_profiles import (
    admin,
    api,
    blynk_config,
    blynk_online,
    broker_logins,
    configure,
    provision,
)
from test_spokezone_renewal import FAST_RETRY

from cloudsim.mqttfront import publish


@pytest.fixture
def sim(cloudsim):
    yield cloudsim
    api(cloudsim, "DELETE", "/_sim/faults", None, admin(cloudsim))


def activate_against(device, sim, status):
    """A Blynk device given a provisioned token, its first activation
    answered with status, run until online or back in setup mode:
    (device, activations before, the state it ended in)."""
    prov = provision(sim)
    api(sim, "POST", "/_sim/faults", {"path": ACTIVATION, "kind": "status", "status": status},
        admin(sim))
    d = device(config={**blynk_config(sim), **FAST_RETRY})
    before = activations(sim)
    configure(d, blynk=prov["token"])
    return d, before, online_or_setup(d)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_an_activation_refused_is_703_after_exactly_one_request(device, sim, status):
    d, before, end = activate_against(device, sim, status)
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 703)
    assert activations(sim) == before + 1


@pytest.mark.parametrize("status", [429, 500])
def test_an_activation_answered_busy_is_retried_and_activates(device, sim, status):
    d, before, end = activate_against(device, sim, status)
    assert end["state"] == "RUNNING"
    assert activations(sim) == before + 2
    assert d.store()["cloud"]["activated"] is True


def test_a_stored_record_without_its_token_is_last_error_700(device, cloudsim, mpy):
    d, _ = blynk_online(device, cloudsim)
    d.kill()
    edit_cloud(mpy, d, token=None)
    again = device(same_as=d, config=blynk_config(cloudsim))
    end = online_or_setup(again)
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)


def test_the_info_message_tells_the_cloud_its_1024_byte_receive_buffer(device, cloudsim):
    prov = provision(cloudsim)
    d = device(config=blynk_config(cloudsim))
    mcu = Subscription(cloudsim, f"blynk/{prov['deviceId']}/info/mcu")  # sent unretained
    try:
        configure(d, blynk=prov["token"])
        d.wait_state("RUNNING")
        (_, payload), = mcu.messages()
    finally:
        mcu.close()
    assert json.loads(payload)["rxbuff"] == 1024


def test_the_info_message_is_published_at_qos_1(device, cloudsim):
    # so the device is online only once the broker has acknowledged it; a
    # QoS 1 subscriber gets a message at the QoS it was sent at (0 stays 0)
    prov = provision(cloudsim)
    d = device(config=blynk_config(cloudsim))
    mcu = Subscription(cloudsim, f"blynk/{prov['deviceId']}/info/mcu", qos=1)
    try:
        configure(d, blynk=prov["token"])
        d.wait_state("RUNNING")
        mcu.messages()
    finally:
        mcu.close()
    assert mcu.qos == [1]


def test_the_info_message_is_not_kept_by_the_broker_for_later_subscribers(device, cloudsim):
    d, prov = blynk_online(device, cloudsim)
    topic = f"blynk/{prov['deviceId']}/info/mcu"
    later = Subscription(cloudsim, topic)
    try:
        # a retained message is sent to a new subscriber before anything
        # published after it subscribed: the marker comes first only if none was kept
        publish(cloudsim.broker.mqtt_port, *cloudsim.internal, topic, "marker")
        first, = later.messages(1)[:1]
    finally:
        later.close()
    assert first == (topic, b"marker")


def test_without_keepalive_s_the_device_asks_the_broker_for_the_45_s_blynk_recommends(
        device, sim):
    # Blynk's MQTT API: keepalive 45 seconds (recommended). Seen in the
    # broker's own log of the login, which Blynk's front passes on as sent
    d, prov = blynk_online(device, sim)
    assert "keepalive_s" not in d.config
    user = f"blynk-{prov['deviceId']}"
    eventually(lambda: broker_logins(sim, user), "the device's login in the broker's log")
    assert [", k45, " in line for line in broker_logins(sim, user)] == [True]
