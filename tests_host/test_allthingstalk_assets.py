"""AllThingsTalk (onboard.clouds.allthingstalk) assets from the product's
config, seen from the simulator (its request log and the device's asset
list) and the device's flash: up to 16 are made, with the documented
defaults, only the ones not made yet or described otherwise since, and no
asset list is written without assets; a config it cannot use, or a stored
record missing its device id or token, is last_error 700 before any request;
an asset PUT refused with 403 is 703; one the API does not make otherwise
leaves the device online and is asked for again at the next session."""

import pytest
from test_profiles import admin, api, att_config, configure


def boot(device, sim, assets, name, with_api=True, refuse=None, status=403, api_url=None,
         **extra):
    """A new AllThingsTalk device of the simulator, configured and run until
    it is online or back in setup mode; (device, its id, config, that event).
    refuse: an asset whose PUTs the simulator answers with status (403: the
    first only; another: all of them until the faults are cleared)."""
    att = sim.clouds["att"]
    device_id = att.add_device("ground-1", name)
    if refuse:
        api(sim, "POST", "/_sim/faults", {"path": f"/att/device/{device_id}/asset/{refuse}",
                                          "kind": "status", "status": status,
                                          "count": 1 if status == 403 else -1}, admin(sim))
    config = {**att_config(sim, assets=assets), **extra}
    if with_api:
        config["api"] = api_url or f"https://127.0.0.1:{sim.https_port}/att"
    d = device(config=config)
    configure(d, device_id=device_id, token=att.devices[device_id]["token"])
    return d, device_id, config, online_or_setup(d)


def online_or_setup(d):
    return d.wait_for(lambda e: e["state"] in ("RUNNING", "WAIT_CONFIG"), "online or setup mode")


def edit_cloud(mpy, d, **fields):
    """Change the cloud section on a stopped device's flash through Store, as
    an older firmware or a hand edit may leave it (None removes a field)."""
    mpy.run(f"from onboard.store import Store\n"
            f"Store({str(d.flash / 'onboard.json')!r}).put('cloud', **{fields!r})\n")


def made(sim, device_id):
    token = sim.clouds["att"].devices[device_id]["token"]
    return api(sim, "GET", f"/att/device/{device_id}/assets", None,
               {"Authorization": "Bearer " + token})


def puts(sim, device_id, name):
    return len(sim.arrivals(f"/att/device/{device_id}/asset/{name}", "PUT"))


def test_sixteen_assets_are_all_made_and_the_device_goes_online(device, cloudsim):
    assets = {f"a{i}": {"is": "sensor", "type": "number"} for i in range(16)}
    d, device_id, _, end = boot(device, cloudsim, assets, "sixteen")
    assert end["state"] == "RUNNING"
    assert sorted(a["name"] for a in made(cloudsim, device_id)) == sorted(assets)


def test_seventeen_assets_are_last_error_700_and_none_is_made(device, cloudsim):
    assets = {f"a{i}": {"is": "sensor", "type": "number"} for i in range(17)}
    d, device_id, _, end = boot(device, cloudsim, assets, "seventeen")
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)
    assert made(cloudsim, device_id) == []


@pytest.mark.parametrize("assets,with_api", [({"led": {}}, False), (["led"], True)],
                         ids=["no-api", "not-an-object"])
def test_assets_without_an_api_or_not_an_object_are_last_error_700(device, cloudsim, assets,
                                                                   with_api):
    d, device_id, _, end = boot(device, cloudsim, assets, "unusable", with_api)
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)
    assert made(cloudsim, device_id) == []


@pytest.mark.parametrize("spec", [{"is": "actuater"}, {"type": "bool"}, {"title": 5}, "actuator"],
                         ids=["kind", "type", "title", "not-an-object"])
def test_an_asset_described_as_allthingstalk_does_not_take_is_700_and_none_is_made(
        device, cloudsim, spec):
    # the other asset is well described: none is asked for, not even it
    d, device_id, _, end = boot(device, cloudsim, {"led": {"is": "actuator", "type": "boolean"},
                                                   "bad": spec}, "described")
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)
    assert puts(cloudsim, device_id, "led") == 0


@pytest.mark.parametrize("name", ["my led", "led/1", "l+", "", "a" * 65])
def test_an_asset_name_that_cannot_go_into_a_topic_or_path_is_700(device, cloudsim, name):
    d, device_id, _, end = boot(device, cloudsim, {"led": {}, name: {}}, "named")
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)
    assert puts(cloudsim, device_id, "led") == 0


def test_an_asset_name_of_64_characters_is_made(device, cloudsim):
    name = "a" * 64
    _, device_id, _, end = boot(device, cloudsim, {name: {}}, "long-name")
    assert end["state"] == "RUNNING"
    assert [a["name"] for a in made(cloudsim, device_id)] == [name]


@pytest.mark.parametrize("kind,type_", [(k, "number") for k in ("actuator", "virtual")] + [
    ("sensor", t) for t in ("boolean", "string", "integer", "number", "object", "array",
                            "location")])
def test_each_kind_and_type_allthingstalk_takes_is_made(device, cloudsim, kind, type_):
    _, device_id, _, end = boot(device, cloudsim, {"a-1_B": {"is": kind, "type": type_}},
                                "takes")
    assert end["state"] == "RUNNING"
    assert [(a["is"], a["profile"]) for a in made(cloudsim, device_id)] == [
        (kind, {"type": type_})]


def test_an_asset_given_no_details_is_a_sensor_of_strings_titled_by_its_name(device, cloudsim):
    _, device_id, _, end = boot(device, cloudsim, {"note": {}}, "defaults")
    assert end["state"] == "RUNNING"
    assert made(cloudsim, device_id) == [{"name": "note", "title": "note", "is": "sensor",
                                          "profile": {"type": "string"}}]


def test_the_asset_code_is_let_go_of_once_the_assets_are_made(device, cloudsim):
    # its own module, loaded for the call at the session's start: the state
    # reached next (RUNNING) holds none of it
    d, device_id, _, end = boot(device, cloudsim, {"led": {}}, "let-go", report_heap=True)
    assert end["state"] == "RUNNING"
    assert [a["name"] for a in made(cloudsim, device_id)] == ["led"]
    assert "clouds.allthingstalk" in end["loaded"]
    assert "clouds.allthingstalk_assets" not in end["loaded"]


def test_an_asset_added_to_the_config_later_is_made_alone(device, cloudsim):
    led = {"led": {"is": "actuator", "type": "boolean"}}
    d, device_id, config, _ = boot(device, cloudsim, led, "grows")
    d.kill()
    config["assets"] = {**led, "temp": {"type": "number"}}
    again = device(same_as=d, config=config)
    assert online_or_setup(again)["state"] == "RUNNING"
    assert (puts(cloudsim, device_id, "led"), puts(cloudsim, device_id, "temp")) == (1, 1)
    assert sorted(again.store()["cloud"]["assets"]) == ["led", "temp"]


def test_a_device_moved_to_another_allthingstalk_device_makes_its_assets_there(device,
                                                                               cloudsim):
    # through the portal, as its owner would: the record of what was made
    # belongs to the first device, not to the new one
    led = {"led": {"is": "actuator", "type": "boolean"}}
    d, first, _, end = boot(device, cloudsim, led, "first")
    assert end["state"] == "RUNNING"
    att = cloudsim.clouds["att"]
    second = att.add_device("ground-1", "second")
    d.press(2000)
    configure(d, device_id=second, token=att.devices[second]["token"])
    d.wait_state("RUNNING")
    assert (puts(cloudsim, first, "led"), puts(cloudsim, second, "led")) == (1, 1)
    assert [a["name"] for a in made(cloudsim, second)] == ["led"]


def test_an_asset_described_otherwise_in_a_new_config_is_made_again_alone(device, cloudsim):
    # a new firmware's config changes the led's type: that PUT updates it
    assets = {"led": {"is": "actuator", "type": "boolean"}, "temp": {"type": "number"}}
    d, device_id, config, _ = boot(device, cloudsim, assets, "changed")
    d.kill()
    config["assets"] = {**assets, "led": {"is": "actuator", "type": "integer"}}
    again = device(same_as=d, config=config)
    assert online_or_setup(again)["state"] == "RUNNING"
    assert (puts(cloudsim, device_id, "led"), puts(cloudsim, device_id, "temp")) == (2, 1)
    assert {a["name"]: a["profile"]["type"] for a in made(cloudsim, device_id)} == {
        "led": "integer", "temp": "number"}


def test_assets_an_older_version_stored_as_names_are_made_again_once(device, cloudsim, mpy):
    # (it kept the names made, not what they were made as)
    led = {"led": {"is": "actuator", "type": "boolean"}}
    d, device_id, config, _ = boot(device, cloudsim, led, "older")
    d.kill()
    edit_cloud(mpy, d, assets=["led"])
    again = device(same_as=d, config=config)
    assert online_or_setup(again)["state"] == "RUNNING"
    assert puts(cloudsim, device_id, "led") == 2
    again.kill()
    third = device(same_as=d, config=config)
    assert online_or_setup(third)["state"] == "RUNNING"
    assert puts(cloudsim, device_id, "led") == 2


def test_an_asset_put_refused_with_403_is_last_error_703_and_not_stored_as_made(device,
                                                                                 cloudsim):
    d, device_id, _, end = boot(device, cloudsim, {"led": {}}, "refused", refuse="led")
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 703)
    assert puts(cloudsim, device_id, "led") == 1
    assert d.store()["cloud"].get("assets") is None


@pytest.mark.parametrize("status", [400, 404, 500])
def test_an_asset_the_api_does_not_make_is_made_at_the_next_session_online_meanwhile(
        device, cloudsim, status):
    # as AllThingsTalk's SDKs, which log the error and connect: never kept
    # offline by an asset (before, it was retried for ever, MQTT never tried)
    assets = {"led": {"is": "actuator", "type": "boolean"}, "temp": {"type": "number"}}
    try:
        d, device_id, config, end = boot(device, cloudsim, assets, f"unmade-{status}",
                                         refuse="led", status=status)
        assert end["state"] == "RUNNING"
        assert [a["name"] for a in made(cloudsim, device_id)] == ["temp"]
        assert sorted(d.store()["cloud"]["assets"]) == ["temp"]
    finally:
        api(cloudsim, "DELETE", "/_sim/faults", None, admin(cloudsim))
    d.kill()
    again = device(same_as=d, config=config)
    assert online_or_setup(again)["state"] == "RUNNING"
    assert (puts(cloudsim, device_id, "led"), puts(cloudsim, device_id, "temp")) == (2, 1)
    assert sorted(again.store()["cloud"]["assets"]) == ["led", "temp"]


def test_with_the_api_out_of_reach_the_device_goes_online_and_asks_once(device, cloudsim):
    from servers import dead_port

    assets = {"led": {}, "temp": {}}
    d, device_id, _, end = boot(device, cloudsim, assets, "api-gone",
                                api_url=f"https://127.0.0.1:{dead_port()}/att")
    assert end["state"] == "RUNNING"
    assert d.store()["cloud"].get("assets") in (None, {})
    d.stop()
    assert d.log_path.read_text().count("not made") == 1  # the rest were not asked


@pytest.mark.parametrize("drop", ["device_id", "token"])
def test_a_stored_record_missing_its_device_id_or_token_is_last_error_700(device, cloudsim,
                                                                          mpy, drop):
    led = {"led": {"is": "actuator", "type": "boolean"}}
    d, _, config, end = boot(device, cloudsim, led, f"lost-{drop}")
    assert end["state"] == "RUNNING"
    d.kill()
    edit_cloud(mpy, d, **{drop: None})
    again = device(same_as=d, config=config)
    end = online_or_setup(again)
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)


def test_without_assets_in_the_config_no_asset_list_is_written(device, cloudsim):
    d, _, _, end = boot(device, cloudsim, {}, "no-assets")
    assert end["state"] == "RUNNING"
    assert "assets" not in d.store()["cloud"]
