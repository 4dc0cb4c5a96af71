"""AllThingsTalk (onboard.clouds.allthingstalk) assets from the product's
config, seen from the simulator (its request log and the device's asset
list) and the device's flash: up to 16 are made, with the documented
defaults, only the ones not made yet, and no asset list is written without
assets; a config it cannot use, or a stored record missing its device id or
token, is last_error 700 before any request; an asset PUT refused with 403
is 703."""

import pytest
from test_profiles import admin, api, att_config, configure


def boot(device, sim, assets, name, with_api=True, refuse=None):
    """A new AllThingsTalk device of the simulator, configured and run until
    it is online or back in setup mode; (device, its id, config, that event).
    refuse: an asset whose first PUT the simulator answers with 403."""
    att = sim.clouds["att"]
    device_id = att.add_device("ground-1", name)
    if refuse:
        api(sim, "POST", "/_sim/faults", {"path": f"/att/device/{device_id}/asset/{refuse}",
                                          "kind": "status", "status": 403}, admin(sim))
    config = att_config(sim, assets=assets)
    if with_api:
        config["api"] = f"https://127.0.0.1:{sim.https_port}/att"
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


def test_an_asset_given_no_details_is_a_sensor_of_strings_titled_by_its_name(device, cloudsim):
    _, device_id, _, end = boot(device, cloudsim, {"note": {}}, "defaults")
    assert end["state"] == "RUNNING"
    assert made(cloudsim, device_id) == [{"name": "note", "title": "note", "is": "sensor",
                                          "profile": {"type": "string"}}]


def test_an_asset_added_to_the_config_later_is_made_alone(device, cloudsim):
    led = {"led": {"is": "actuator", "type": "boolean"}}
    d, device_id, config, _ = boot(device, cloudsim, led, "grows")
    d.kill()
    config["assets"] = {**led, "temp": {"type": "number"}}
    again = device(same_as=d, config=config)
    assert online_or_setup(again)["state"] == "RUNNING"
    assert (puts(cloudsim, device_id, "led"), puts(cloudsim, device_id, "temp")) == (1, 1)
    assert again.store()["cloud"]["assets"] == ["led", "temp"]


def test_an_asset_put_refused_with_403_is_last_error_703_and_not_stored_as_made(device,
                                                                                 cloudsim):
    d, device_id, _, end = boot(device, cloudsim, {"led": {}}, "refused", refuse="led")
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 703)
    assert puts(cloudsim, device_id, "led") == 1
    assert d.store()["cloud"].get("assets") is None


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
