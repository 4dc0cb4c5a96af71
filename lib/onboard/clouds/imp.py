# Electric Imp style credentials: enrolment tokens and Wi-Fi set from code,
# as imp.setenroltokens() / imp.setwificonfiguration() /
# imp.clearconfiguration() do. Tokens and plan IDs are 64-bit numbers kept
# as canonical hex strings (onboard.hex64).
from micropython import const

from onboard.hex64 import canonical
from onboard.wifi import remember

CONFIG_WIFI = const(1)  # forget Wi-Fi, keep the enrolment
CONFIG_ALL = const(0xFF)  # forget Wi-Fi, enrolment and cloud state


def set_enrol_tokens(store, plan_id, token):
    """Store the plan ID and enrolment token; both are checked first, so a bad
    one stores nothing. Returns True when the store changed."""
    plan_id = canonical(plan_id, "plan_id")
    token = canonical(token, "token")
    return store.put("enrol", plan_id=plan_id, token=token)


def set_wifi_configuration(store, ssid, key):
    """Make (ssid, key) the first network to try; key "" for an open network."""
    return remember(store, ssid, key)


def clear_configuration(store, what=CONFIG_ALL):
    """Forget credentials: CONFIG_WIFI keeps the enrolment, CONFIG_ALL does not."""
    if what == CONFIG_WIFI:
        return store.clear("wifi")
    if what == CONFIG_ALL:
        return store.clear("wifi", "enrol", "cloud")
    raise ValueError("what: must be CONFIG_WIFI or CONFIG_ALL")
