# The redirects onboard.http and onboard.ahttp follow, in a module of its own:
# loaded when a reply redirects (after its connection is closed), so a
# request that is answered directly does not keep this code in RAM.
from onboard.httpmsg import fail, head


def follow(hop, r, url, method, body, is_json, headers):
    """(url, method, body, is_json) of the request that follows r, a 301, 302,
    303, 307 or 308 with a Location, the hop-th redirect (from 0) of a request
    to url. Never to another scheme; to another host or port only without a
    body or the caller's headers (credentials stay with the origin they were
    for); at most 3."""
    tls, host, port = head("GET", url, None, False, None)[:3]
    if hop >= 3:
        raise fail("NetError", host, "redirect", "more than 3 redirects")
    loc = r.headers["location"]
    if loc.startswith("/"):  # this scheme; after "//" another host, else this origin
        loc = ("https:" if tls else "http:") + (
            "" if loc.startswith("//") else "//%s:%d" % (host, port)) + loc
    try:
        new = head("GET", loc, None, False, None)
    except ValueError:  # (a reference onboard does not resolve, credentials, ...)
        raise fail("NetError", host, "redirect", "location malformed") from None
    if method != "HEAD" and (r.status_code == 303 or r.status_code < 303 and method == "POST"):
        method, body, is_json = "GET", None, False
    if new[0] != tls or (new[1].lower(), new[2]) != (host.lower(), port) and (
            body is not None or headers):
        raise fail("NetError", host, "redirect", "to another origin refused")
    return loc, method, body, is_json
