# What every cloud profile (onboard.clouds.*) and the session share while
# online: downlink outcomes, Rejected and Transient, renewal margins. Apart
# from the profiles, so that setup mode, which loads the profile for its
# fields, does not hold it. The HTTPS requests of a profile's start are in
# onboard.cloudapi, let go of once the profile is online.
#
# The profiles: one small module per cloud in onboard/clouds/ (a package
# without an __init__, as onboard/ itself: importing a module loads no
# package code); import only the one a product uses. A profile is data and a
# few functions; it never changes the runtime's state or writes the store.
# It hands the runtime outcomes:
#   check(fields, config, current) -> cloud fields from setup, checked
#   async start(rt) -> a link (dict): what to store first (checked values),
#       the MQTT login ("mqtt": (user, password, host, port, tls), None for
#       the config's), topics and birth messages, and when to come back
#       (renew_s); raises Rejected or Transient
#   downlink(cloud, topic, msg) -> None (for the application) or an outcome
# A profile may keep what only the session uses in a module of its own that
# its module __getattr__ loads (blynk: blynk_online), so setup mode, which
# holds the profile, does not hold that code too.
from micropython import const

# downlink outcomes: (kind, ...)
HANDLED = const(0)  # nothing more to do
RECONFIGURE = const(1)  # open setup mode, keeping the credentials
REBOOT = const(2)
REDIRECT = const(3)  # (REDIRECT, cloud fields): store them, connect again
PUBLISH = const(4)  # (PUBLISH, topic, msg): answer on MQTT


class Rejected(Exception):
    """The cloud refused the device's credentials (HTTP 401/403, CONNACK 4/5):
    setup mode with last_error args[1] (703 by default). args[0] names the
    step; args[2], when given, are cloud fields to store (a status)."""


class Transient(Exception):
    """Worth retrying later; args: (step, Retry-After seconds or 0)."""


def renew_margin(lifetime):
    """Seconds before expiry to renew: 10 min (lifetime > 1 h), 2 min (> 240 s),
    10 s (> 20 s), else half the lifetime."""
    if lifetime > 3600:
        return 600
    if lifetime > 240:
        return 120
    if lifetime > 20:
        return 10
    return lifetime // 2
