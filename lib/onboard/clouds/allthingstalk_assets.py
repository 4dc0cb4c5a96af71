# AllThingsTalk's assets (onboard.clouds.allthingstalk): the product's config
# "assets" made with PUT {api}/device/{id}/asset/{name}. The profile loads
# this module for the one call at a session's start, when the config has
# assets, and lets go of it at once.
from micropython import const

_ERR_CONFIG = const(700)  # onboard.codes' ERR_CONFIG
_ASSETS = const(16)  # at most this many assets in a config
# what AllThingsTalk's WiFi SDK takes before it makes an asset: its kinds
# (the documented three) and its profiles' types
_KINDS = ("sensor", "actuator", "virtual")
_TYPES = ("boolean", "string", "integer", "number", "object", "array", "location")


def unusable(config):
    """(field, what it must be) for the first thing of config's assets that
    AllThingsTalk would not make, else None: checked before any request
    (700) and by `onboard deploy`."""
    import re

    assets = config.get("assets") or {}
    if type(assets) is not dict or len(assets) > _ASSETS:
        return "assets", "an object of at most 16 assets"
    if assets and "api" not in config:
        return "api", "given with assets"
    for name, spec in assets.items():
        # (the name goes into the URL's path and the topics: letters, digits, - and _)
        if not (type(spec) is dict and re.match("^[A-Za-z0-9_-]+$", name) and len(name) <= 64
                and spec.get("is", "sensor") in _KINDS and spec.get("type", "string") in _TYPES
                and type(spec.get("title", name)) is str):
            return "assets." + name, ("named with 1-64 letters, digits, - or _; is: " + "/".join(
                _KINDS) + "; type: " + "/".join(_TYPES) + "; title: text")
    return None


async def make(rt, cloud):
    """PUT each of the config's assets not yet made as it is described (the cloud record
    keeps {name: the CRC of its description} of those made, so that one
    described otherwise by a new firmware's config is made again); returns
    what the cloud record is to store, {"assets": that record}, or None when
    all are made as described. One the API does not make (an error reply;
    none at all, and the rest are not asked) is logged and asked for again
    at the next session, which goes online meanwhile, as AllThingsTalk's
    SDKs do; a refused token (401/403) is raised, and so is (700) a config
    whose assets AllThingsTalk would not take (unusable), before any
    request."""
    import json
    from binascii import crc32

    from onboard import log
    from onboard.cloud import Rejected, Transient
    from onboard.cloudapi import fetch, judge

    bad = unusable(rt.config)
    if bad:
        log.error("att", "config: %s must be %s", bad[0], bad[1])
        raise Rejected("config", _ERR_CONFIG)
    assets = rt.config["assets"]
    marks = {}
    for name in assets:  # (a loop: a comprehension is a function in RAM)
        marks[name] = crc32(json.dumps(assets[name]))
    done = cloud.get("assets")
    if done == marks:
        return None  # (nothing to store)
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
    return {"assets": made}
