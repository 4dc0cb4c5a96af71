# One verifying HTTPS request to a URL given as a parameter: the file
# test_params.json beside the script ({"url": ..., "ca": <path or null>}).
# `make test` points it at cloudsim; on a board, copy one there first.
import json

from tinytest import summary, test

from onboard import http

try:
    with open("test_params.json") as f:
        params = json.load(f)
except OSError:
    params = None
    print("test_https: no test_params.json, nothing to check")


if params:
    @test
    def verified_request_gets_a_reply():
        r = http.get(params["url"], ca=params.get("ca"), insecure=params.get("ca") is None,
                     timeout=15)
        assert 100 <= r.status_code <= 599
        r.close()

    @test
    def https_without_a_ca_is_refused_unless_insecure():
        try:
            http.get(params["url"], timeout=15)
        except ValueError as e:
            assert str(e).startswith("ca: ")
            return
        raise AssertionError("an unverified request went through")

summary()
