# A cloud profile's HTTPS steps (activation, renewal, asset creation,
# sign-up): the request to the config's API, and its reply judged and read.
# Loaded by a profile's start() and let go of once the profile is online
# (onboard.session), so that none of it stays in RAM while RUNNING. The
# outcomes it raises are onboard.cloud's.
from onboard.cloud import Rejected, Transient


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
            pass  # (not a number of seconds: the device's own backoff)
    raise Transient(step, max(0, min(retry, 3600)))


def body(resp, step, *names):
    """The named fields of a JSON object reply; Transient when it is not one."""
    try:
        doc = resp.json()  # (not an object: a name as its index is a TypeError)
        out = []
        for n in names:  # (a loop: a comprehension is a function in RAM)
            out.append(doc[n])
        return out
    except (ValueError, KeyError, TypeError):
        raise Transient(step, 0) from None


def text(value, step, limit=4096):
    """A non-empty string from a reply, bounded; Transient otherwise."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise Transient(step, 0)
    return value


async def fetch(rt, method, path, **kw):
    """One request to the config's API with its CA and timeout; over HTTPS
    the verified server's Date refines the clock (a plain one's never)."""
    from onboard.ahttp import arequest

    cfg = rt.config
    ca = cfg.get("ca")
    https = cfg["api"].startswith("https:")
    if https and hasattr(rt, "ctx"):
        from onboard.session import session_tls

        ca = session_tls(rt)  # the session's one context, shared with its MQTT
    resp = await arequest(method, cfg["api"] + path, ca=ca,
                          timeout=cfg.get("timeout_s", 10), **kw)
    if https:  # (a plain http:// api is no verified server: its Date is not taken)
        # the Date reader (small) is loaded after the request, whose TLS needs the room
        from onboard.httpdate import learn
        from onboard.runtime import forget

        learn(resp.headers.get("date"))
        forget("httpdate")
    return resp
