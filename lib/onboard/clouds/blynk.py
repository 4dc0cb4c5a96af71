# Blynk: the auth token from the portal (field "blynk"), activation, and MQTT.
# This module holds FIELDS, which setup mode's portal shows. check, for the
# portal's /config, is in blynk_check: loaded for the call and let go of at
# once. start, downlink and redirect, which only the cloud session needs, are
# in blynk_online, loaded on their first use and let go of with the session.
# Both are reached through the module __getattr__.

# extra portal fields: (name, label, secret)
FIELDS = (("blynk", "Blynk auth token", True),)
# Blynk's limit on an MQTT message: its variable header (the topic with its
# length, the packet id at QoS 1) and payload; the runtime's publish refuses more
MAX_MESSAGE = 1024


def __getattr__(name):
    # check: the one function of onboard.clouds.blynk_check, which is let go
    # of before it runs (the function keeps what it needs while it is held)
    if name == "check":
        from onboard.clouds import blynk_check
        from onboard.store import let_go

        let_go("clouds.blynk_check")
        return blynk_check.check
    # redirect, downlink, start: the profile's online part (onboard.clouds.
    # blynk_online), loaded by the cloud session and let go of with it, so
    # setup mode does not hold it
    if name in ("redirect", "downlink", "start"):
        from onboard.clouds import blynk_online

        return getattr(blynk_online, name)
    raise AttributeError(name)
