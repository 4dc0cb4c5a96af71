"""Each cloud profile's setup page (onboard.clouds.spokezone,
onboard.clouds.allthingstalk, onboard.clouds.blynk), fetched from a
simulated device in setup mode: the profile's fields are on the form, its
secrets (tokens) in password inputs that the browser masks, the rest in
text inputs."""

import re

import pytest
from test_portal import get, port_of

INPUTS = re.compile(r'<input name="(\w+)" type="(\w+)" autocomplete="off">')


@pytest.mark.parametrize("profile,expected", [
    ("spokezone", {"token": "password", "uuid": "text", "cpu_id": "text"}),
    ("allthingstalk", {"device_id": "text", "token": "password"}),
    ("blynk", {"blynk": "password"}),
])
def test_the_setup_page_masks_the_profiles_secret_fields(device, profile, expected):
    d = device(config={"profile": profile})
    port = port_of(d.wait_state("WAIT_CONFIG"))
    status, _, body = get(port, "/")
    assert status == 200
    assert dict(INPUTS.findall(body.decode())) == expected
