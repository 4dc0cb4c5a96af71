"""What the AllThingsTalk profile takes from setup and answers to a command,
run on the Unix port: the device id's alphabet and length, the token's
length, and the state that acknowledges a command. Each case is the
profile's answer (or the ValueError it raises) for one input; a state
report is what the profile hands the runtime's publish()."""

import json

import pytest

SCRIPT = r"""
import json
from answers import answer
from onboard.clouds.allthingstalk import (check, echo, downlink, publish_state,
                                          publish_states, state_topic)
from onboard.store import Store

TOKEN = "maker:4Ab"  # 9 characters


answer("check", lambda: check({"device_id": "dev_1-A", "token": TOKEN}, {}))
answer("id-64", lambda: check({"device_id": "d" * 64, "token": TOKEN}, {})["device_id"])
answer("id-65", lambda: check({"device_id": "d" * 65, "token": TOKEN}, {}))
answer("id-empty", lambda: check({"token": TOKEN}, {}))
answer("id-slash", lambda: check({"device_id": "a/b", "token": TOKEN}, {}))
answer("id-trailing", lambda: check({"device_id": "ab+", "token": TOKEN}, {}))
answer("token-8", lambda: check({"device_id": "d", "token": "t" * 8}, {})["token"])
answer("token-7", lambda: check({"device_id": "d", "token": "t" * 7}, {}))
answer("token-256", lambda: check({"device_id": "d", "token": "t" * 256}, {})["token"])
answer("token-257", lambda: check({"device_id": "d", "token": "t" * 257}, {}))

CLOUD = {"device_id": "dev1"}
answer("echo", lambda: echo(CLOUD, b"device/dev1/asset/led/command", b'{"value": true}'))
answer("echo-at", lambda: echo(CLOUD, b"device/dev1/asset/led/command", b'{"value": 3, "at": 1}'))
answer("echo-no-value", lambda: echo(CLOUD, b"device/dev1/asset/led/command", b'{"v": 1}'))
answer("echo-not-json", lambda: echo(CLOUD, b"device/dev1/asset/led/command", b"on"))
answer("echo-not-object", lambda: echo(CLOUD, b"device/dev1/asset/led/command", b"[1]"))
answer("echo-short-topic", lambda: echo(CLOUD, b"device/dev1/asset", b'{"value": 1}'))
answer("echo-not-utf8", lambda: echo(CLOUD, b"device/dev1/\xff/led", b'{"value": 1}'))
answer("down", lambda: downlink(CLOUD, b"device/dev1/asset/led/command", b'{"value": 1}'))
answer("state-topic", lambda: state_topic("dev1", "temp"))


class Runtime:
    # what the profile uses of the runtime: its store and its publish()
    def __init__(self, online):
        self.store = Store("att.json")
        self.store.put("cloud", device_id="dev1", token="maker:4Ab")
        self.online, self.sent = online, []

    def publish(self, topic, msg, retain=False, qos=0):
        self.sent.append([topic, json.loads(msg), retain, qos])
        return self.online


def published(online, fn, arg):
    rt = Runtime(online)
    return fn(rt, *arg), rt.sent


answer("publish-state", lambda: published(True, publish_state, ("temp", 21.5)))
answer("publish-state-offline", lambda: published(False, publish_state, ("temp", 21.5)))
answer("publish-states", lambda: published(True, publish_states, ({"temp": 21.5, "led": True},)))
answer("publish-states-offline", lambda: published(False, publish_states, ({"led": True},)))
"""


@pytest.fixture(scope="module")
def cases(mpy_in):
    run = mpy_in("allthingstalk_fields").run(SCRIPT)
    return {d["case"]: d for d in (json.loads(x) for x in run.lines if x.startswith("{"))}


def test_setup_stores_id_and_token_and_has_the_assets_made_again(cases):
    assert cases["check"]["out"] == {"device_id": "dev_1-A", "token": "maker:4Ab",
                                     "assets": None}


def test_a_device_id_of_64_characters_is_taken(cases):
    assert cases["id-64"]["out"] == "d" * 64


@pytest.mark.parametrize("case", ["id-65", "id-empty", "id-slash", "id-trailing"])
def test_a_device_id_too_long_empty_or_with_other_characters_is_refused(cases, case):
    assert cases[case]["error"] == "device_id: letters, digits, - and _ only"


@pytest.mark.parametrize("case,length", [("token-8", 8), ("token-256", 256)])
def test_tokens_of_8_and_256_characters_are_taken(cases, case, length):
    assert cases[case]["out"] == "t" * length


@pytest.mark.parametrize("case", ["token-7", "token-257"])
def test_a_token_shorter_than_8_or_longer_than_256_is_refused_naming_the_field(cases, case):
    assert cases[case]["error"] == "token: must be 8-256 characters"


def test_a_command_is_acknowledged_with_its_value_on_the_assets_state_topic(cases):
    topic, payload = cases["echo"]["out"]
    assert topic == "device/dev1/asset/led/state"
    assert json.loads(payload) == {"value": True}


def test_the_acknowledgement_carries_only_the_commanded_value(cases):
    assert json.loads(cases["echo-at"]["out"][1]) == {"value": 3}


@pytest.mark.parametrize("case", ["echo-no-value", "echo-not-json", "echo-not-object",
                                  "echo-short-topic", "echo-not-utf8"])
def test_a_command_that_is_not_a_value_for_an_asset_gets_no_acknowledgement(cases, case):
    assert cases[case] == {"case": case, "out": None, "error": None}


def test_commands_are_left_to_the_application(cases):
    assert cases["down"] == {"case": "down", "out": None, "error": None}


def test_an_assets_state_topic(cases):
    assert cases["state-topic"]["out"] == "device/dev1/asset/temp/state"


def test_a_state_is_published_as_its_value_on_the_assets_state_topic_with_qos_1(cases):
    assert cases["publish-state"]["out"] == [
        True, [["device/dev1/asset/temp/state", {"value": 21.5}, False, 1]]]


def test_several_states_go_in_one_message_on_the_devices_state_topic_with_qos_1(cases):
    assert cases["publish-states"]["out"] == [
        True, [["device/dev1/state", {"temp": {"value": 21.5}, "led": {"value": True}}, False, 1]]]


@pytest.mark.parametrize("case", ["publish-state-offline", "publish-states-offline"])
def test_a_state_report_says_false_when_the_runtime_is_offline(cases, case):
    assert cases[case]["out"][0] is False
