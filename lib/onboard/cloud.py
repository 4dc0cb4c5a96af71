# What every cloud profile (onboard.clouds.*) shares: downlink outcomes,
# Rejected and Transient, how a reply is judged, renewal margins and the
# HTTPS request to the config's API. Apart from the clouds package, so that
# setup mode, which loads the profile for its fields, does not hold it.
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


def judge(resp, step, refused=(401, 403)):
    """Raise Rejected or Transient unless the reply is a 2xx."""
    code = resp.status_code
    if 200 <= code < 300:
        return resp
    if code in refused:
        raise Rejected(step)
    retry = 0
    if code in (429, 503):
        try:
            retry = int(resp.headers.get("retry-after", "0"))
        except ValueError:
            retry = 0
    raise Transient(step, max(0, min(retry, 3600)))


def body(resp, step, *names):
    """The named fields of a JSON object reply; Transient when it is not one."""
    try:
        doc = resp.json()
        if not isinstance(doc, dict):
            raise ValueError
        return [doc[n] for n in names]
    except (ValueError, KeyError, TypeError):
        raise Transient(step, 0) from None


def text(value, step, limit=4096):
    """A non-empty string from a reply, bounded; Transient otherwise."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise Transient(step, 0)
    return value


def seconds(value, step):
    """A positive whole number of seconds from a reply; Transient otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1 << 31:
        raise Transient(step, 0)
    return int(value)


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


async def fetch(rt, method, path, **kw):
    """One HTTPS request to the config's API with its CA and timeout; the
    verified server's Date refines the clock."""
    from onboard.ahttp import arequest

    cfg = rt.config
    ca = cfg.get("ca")
    if cfg["api"].startswith("https:") and hasattr(rt, "ctx"):
        from onboard.session import session_tls

        ca = session_tls(rt)  # the session's one context, shared with its MQTT
    resp = await arequest(method, cfg["api"] + path, ca=ca,
                          timeout=cfg.get("timeout_s", 10), **kw)
    # the Date reader (small) is loaded after the request, whose TLS needs the room
    from onboard.httpdate import learn
    from onboard.runtime import forget

    learn(resp.headers.get("date"))
    forget("httpdate")
    return resp
