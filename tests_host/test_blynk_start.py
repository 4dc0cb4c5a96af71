"""The Blynk profile's start on a simulated device, seen from its state and
the flash: a stored record without a token is last_error 700."""

from test_allthingstalk_assets import edit_cloud, online_or_setup
from test_profiles import blynk_config, blynk_online


def test_a_stored_record_without_its_token_is_last_error_700(device, cloudsim, mpy):
    d, _ = blynk_online(device, cloudsim)
    d.kill()
    edit_cloud(mpy, d, token=None)
    again = device(same_as=d, config=blynk_config(cloudsim))
    end = online_or_setup(again)
    assert (end["state"], end["last_error"]) == ("WAIT_CONFIG", 700)
