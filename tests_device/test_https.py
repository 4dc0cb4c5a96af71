# HTTPS with certificate verification, against local servers whose CA the
# script is given: test_params.json beside it ({"url", "other_name_url",
# "ca", "stranger_ca", "body", "lingering_url", "identity", "wifi"?};
# lingering_url: answered with how many refused connections to the other
# server are still open, once none is or after 10 s; identity: a device
# certificate and its key in several forms, and the URL of a server that
# answers with the name of the certificate shown to it), written with the
# CA and identity files by
# `onboard test-device` (and by `make test`'s run on the Unix port). Without
# them the script fails: it never passes having checked nothing.
import json
import sys

from tinytest import raises, station, summary, test

from onboard import http

try:
    with open("test_params.json") as f:
        params = json.load(f)
except (OSError, ValueError):
    params = None


@test
def params_are_given():
    assert params, "no test_params.json: run the script through `onboard test-device`"


if params and params.get("wifi") and sys.platform != "linux":
    @test
    def station_joins_the_given_network():
        import time

        sta = station()
        sta.connect(params["wifi"]["ssid"], params["wifi"]["password"])
        start = time.ticks_ms()
        while not sta.isconnected() and time.ticks_diff(time.ticks_ms(), start) < 20000:
            time.sleep_ms(100)
        assert sta.isconnected(), "did not join %s" % params["wifi"]["ssid"]


if params and params.get("now") and sys.platform != "linux":
    # a board wakes at 2000-01-01 and TLS checks certificate dates: the host
    # that runs the tests gives the time, as onboard.clock does for the runtime
    import time

    if time.time() < params["now"] - 946684800 - 86400:
        import machine

        t = time.gmtime(params["now"] - 946684800)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


if params:
    @test
    def request_verified_against_the_given_ca_gets_the_servers_reply():
        r = http.get(params["url"], ca=params["ca"], timeout=15)
        assert r.status_code == 200
        assert r.text == params["body"]

    @test
    def a_ca_that_did_not_sign_the_certificate_is_refused():
        raises(OSError, http.get, params["url"], ca=params["stranger_ca"], timeout=15)

    @test
    def a_certificate_for_another_name_is_refused():
        raises(OSError, http.get, params["other_name_url"], ca=params["ca"], timeout=15)

    @test
    def a_handshake_refused_on_asyncio_closes_its_connection_at_once():
        # MicroPython's TLS socket lets go of its plain socket when its
        # handshake fails: onboard closes that socket, not the collector (off)
        import asyncio
        import gc

        from onboard.ahttp import arequest

        # (collected first: a board whose heap fills with the collector off
        # grows it, taking the RAM its network stack and TLS live on)
        gc.collect()
        gc.disable()
        try:
            raises(OSError, asyncio.run,
                   arequest("GET", params["other_name_url"], ca=params["ca"], timeout=15))
            # the server counts the connections still open after its refusal
            r = http.get(params["lingering_url"], ca=params["ca"], timeout=30)
            assert (r.status_code, r.text) == (200, "0"), r.text
        finally:
            gc.enable()

    @test
    def https_without_a_ca_is_refused_unless_insecure():
        e = raises(ValueError, http.get, params["url"], timeout=15)
        assert str(e).startswith("ca: ")

    @test
    def a_ca_file_that_cannot_be_read_is_a_value_error_naming_it():
        # missing, or a folder: a board's filesystem will not open a folder,
        # the Unix port's opens it (onboard.ca bounds its size); either way
        # the error names the config's field and path, as the device's 700 does
        import os

        try:
            os.mkdir("ca_folder")
        except OSError:  # (left by an earlier run)
            pass
        try:
            for path in ("no_such_ca.pem", "ca_folder"):
                e = raises(ValueError, http.get, params["url"], ca=path, timeout=15)
                assert str(e) == "ca: cannot read " + path, str(e)
        finally:
            os.rmdir("ca_folder")

    @test
    def the_devices_certificate_in_each_form_is_shown_to_a_server_that_asks():
        # as plgd hub asks for it: PEM, DER, and a key as `openssl ecparam`
        # writes it (the curve named first)
        import tls

        from onboard import ca, cloudtls

        me = params["identity"]
        for cert, key in me["files"]:
            assert cloudtls.uuid(cert) == me["name"][5:], cert
            ctx = ca.context(params["ca"], False, tls.SSLContext(tls.PROTOCOL_TLS_CLIENT))
            cloudtls.load(ctx, {"cert": cert, "key": key})
            r = http.get(me["url"], ca=ctx, timeout=15)
            assert (r.status_code, r.text) == (200, me["name"]), (key, r.status_code, r.text)

summary()
