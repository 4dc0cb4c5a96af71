# AllThingsTalk's assets (onboard.clouds.allthingstalk): the product's config
# "assets" made with PUT {api}/device/{id}/asset/{name}. The profile loads
# this module for the one call at a session's start, when some are not made
# yet (or were made as the config described them before), and lets go of it
# at once.
from micropython import const

_ERR_CONFIG = const(700)  # onboard.codes' ERR_CONFIG
# what AllThingsTalk's WiFi SDK takes before it makes an asset: its kinds
# (the documented three) and its profiles' types
_KINDS = ("sensor", "actuator", "virtual")
_TYPES = ("boolean", "string", "integer", "number", "object", "array", "location")


async def make(rt, cloud, assets, marks):
    """PUT each asset not yet made as it is described (marks: {name: the CRC
    of its description}, as the cloud record keeps the assets made); returns
    {name: mark} of those made. One the API does not make (an error reply;
    none at all, and the rest are not asked) is logged and asked for again
    at the next session, which goes online meanwhile, as AllThingsTalk's
    SDKs do; a refused token (401/403) is raised, and so is (700) an asset
    the config describes in a way the cloud does not take, before any
    request."""
    import re

    from onboard import log
    from onboard.cloud import Rejected, Transient
    from onboard.cloudapi import fetch, judge

    for name, spec in assets.items():
        # (the name goes into the URL's path and the topics: letters, digits, - and _)
        if not (type(spec) is dict and re.match("^[A-Za-z0-9_-]+$", name) and len(name) <= 64
                and spec.get("is", "sensor") in _KINDS and spec.get("type", "string") in _TYPES
                and type(spec.get("title", name)) is str):
            log.error("att", "asset %s: its name, is, type or title is not taken", name)
            raise Rejected("config", _ERR_CONFIG)
    done = cloud.get("assets")
    if type(done) is not dict:  # (none yet, or an older version's list of names)
        done = {}
    made = {}
    auth = {"Authorization": "Bearer " + cloud["token"]}
    answers = True  # the API answered the last request
    for name, spec in assets.items():
        if done.get(name) != marks[name]:
            if not answers:
                continue
            try:
                resp = await fetch(rt, "PUT", "/device/%s/asset/%s" % (cloud["device_id"], name),
                                   headers=auth, json={
                                       "title": spec.get("title", name),
                                       "is": spec.get("is", "sensor"),
                                       "profile": {"type": spec.get("type", "string")}})
                judge(resp, "asset")
            except (Rejected, MemoryError):
                raise
            except Exception as e:  # noqa: BLE001  (an error reply, or none)
                log.warn("att", "asset %s not made (%s): again at the next session", name,
                         type(e).__name__)
                answers = isinstance(e, Transient)
                continue
        made[name] = marks[name]
    return made
