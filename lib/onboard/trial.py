# New settings on trial: from setup mode, where they arrive, until they have
# worked (switch: they replace the working ones) or failed (end). Loaded only
# then (Runtime.try_pending: once setup mode's code has been let go of, as
# setup mode is the fullest state), and at boot when a power cut came during
# a trial; let go of after, so a device online on settings that work holds
# none of this code.
from micropython import const

from onboard import log

_TAG = const("runtime")
_MAX_NETWORKS = const(8)  # the saved networks kept, at most (wifi.MAX_NETWORKS)


class Trial:
    """The store as settings on trial see it: the pending cloud fields over
    the stored ones; cloud writes go to the pending record (state.pending),
    everything else to the store."""

    since = None  # ticks_ms of their first failure to reach the cloud (onboard.failed)

    def __init__(self, store):
        self.real = store

    def __getattr__(self, name):
        return getattr(self.real, name)

    def get(self, section):
        got = self.real.get(section)
        if section == "cloud":
            for k, v in self.real.get("state")["pending"]["cloud"].items():
                if v is None:
                    got.pop(k, None)
                else:
                    got[k] = v
        return got

    def put(self, section, **fields):
        # the store's one write (Store.put's forms), the cloud fields in the
        # pending record
        if type(section) is dict and not fields:
            sections = dict(section)
        else:  # (fields beside a dict: TypeError, unhashable, as Store.put)
            sections = {section: fields}  # pyright: ignore  (that TypeError is the refusal)
        if "cloud" in sections:
            p = self.real.get("state")["pending"]
            p["cloud"].update(sections.pop("cloud"))
            sections["state"] = dict(sections.get("state", {}), pending=p)
        return self.real.put(sections)


def switch(store):
    """Pending settings that worked replace the working ones, in one store
    write: a power cut leaves the old settings with the pending ones (tried
    again at boot) or the new ones working."""
    p = store.get("state").get("pending")
    if not p:
        return
    # wifi.remember's list, without loading the Wi-Fi manager while online
    # (at RUNNING's peak): the pending network first, once, the list capped
    # as wifi.MAX_NETWORKS caps it (the credentials were checked on arrival)
    net = {"ssid": p["ssid"], "password": p["password"]}
    if p.get("ip"):
        net["ip"] = p["ip"]
    nets = [net]
    for n in store.get("wifi").get("networks", []):  # (a loop: a comprehension is a function)
        if n.get("ssid") != p["ssid"] and len(nets) < _MAX_NETWORKS:
            nets.append(n)
    store.put({"wifi": {"networks": nets}, "cloud": p["cloud"], "state": {"pending": None}})


def end(rt, code):
    """Pending settings failed: forget them, keep the working ones and show
    why in setup mode (one store write)."""
    from onboard.runtime import forget

    log.warn(_TAG, "new settings failed (%d): back to the working ones", code)
    rt.store = rt.real
    rt.last_error = code
    rt.real.put("state", pending=None, last_error=code)
    rt.setup_requested = True
    rt.fresh = False
    forget("trial")
