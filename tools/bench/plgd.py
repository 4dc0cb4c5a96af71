"""Figures of plgd as a real plgd device: the .mpy sizes of its CoAP/CBOR
core and profile, and the heap of one refresh plus one sign-in (with the
publish that follows) over coaps+tcp against cloudsim's gateway, next to the
HTTPS OAuth refresh it replaces (the profile before issue 12)."""

import cloudsim.clouds.plgd as oauth
from cloudsim.app import Cloudsim
from cloudsim.coapgw import USER

from .measure import allocated, mpy_size, smallest_heap, workdir

DI = "00000000-0000-4000-8000-0123456789ab"

# a stand-in for the runtime: the store, the config, and now_online() ending the run
COAP_SETUP = """
import asyncio
from onboard.store import Store

class Online(Exception):
    pass

class RT:
    config = {{"ca": {ca!r}, "timeout_s": 10, "name": "bench"}}
    ctx = None  # the runtime's TLS context: none, so plgd makes its own (as before issue 14)
    store = Store("onboard.json")
    def uid(self):
        return "0123456789ab"
    def now_online(self):
        raise Online

rt = RT()
rt.store.put("cloud", cis={cis!r}, uid={uid!r}, access_token={access!r},
             refresh_token={refresh!r}, cps="registered")
"""

# as the runtime does it: start() refreshes, the pair is stored, the session signs in
COAP_OP = """
from onboard.clouds import plgd

async def once():
    link = await plgd.start(rt)
    rt.store.put("cloud", **link["store"])
    try:
        await link["serve"]
    except Online:
        pass

asyncio.run(once())
"""

HTTPS_SETUP = """
from onboard.store import Store
URL = {url!r}
CA = {ca!r}
store = Store("onboard.json")
store.put("cloud", refresh_token={refresh!r})
"""

# the exchange the profile made before: the OAuth refresh grant over HTTPS,
# its new pair stored as the runtime stored it
HTTPS_OP = """
import asyncio
from onboard.ahttp import arequest

async def once():
    r = await arequest("POST", URL, ca=CA, timeout=10,
                       data="grant_type=refresh_token&client_id=onboard-device&"
                            "refresh_token=" + store.get("cloud")["refresh_token"],
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    doc = r.json()
    store.put("cloud", access_token=doc["access_token"], refresh_token=doc["refresh_token"])

asyncio.run(once())
"""


IMPORTS = """
from onboard.clouds import plgd
from onboard import coap, cbor, ocf, net, ca, errors
"""
HTTPS_IMPORTS = "from onboard import ahttp, net, ca, errors\n"


class _Kept(dict):
    """Refresh tokens that survive their use: the bench repeats one refresh."""

    def __delitem__(self, key):
        pass


def figures():
    coap, cbor = mpy_size("coap"), mpy_size("cbor")
    rows = [("plgd", "coap.mpy + cbor.mpy", coap + cbor, "B", "<= 4,000 B"),
            ("plgd", "  coap.mpy, cbor.mpy", f"{coap:,} + {cbor:,}", "B", ""),
            ("plgd", "clouds/plgd.mpy", mpy_size("clouds.plgd"), "B", "<= 2,500 B"),
            ("plgd", "ocf.mpy (coapcloudconf rules, the application's resources)",
             mpy_size("ocf"), "B", ""),
            ("plgd", "ocfres.mpy (/oic/res: loaded for each answer, let go of)",
             mpy_size("ocfres"), "B", "")]
    with workdir() as d:
        sim = Cloudsim(d + "/cloudsim", log=lambda line: None).start()
        limit = oauth.THROTTLE_LIMIT
        try:
            gw = sim.gateway
            gw.refresh = _Kept(gw.refresh)
            sim.clouds["plgd"].refresh = _Kept(sim.clouds["plgd"].refresh)
            oauth.THROTTLE_LIMIT = 1 << 30  # (the bench asks the same token many times)
            gw.devices[DI] = {"di": DI, "uid": USER, "links": {}, "remote": None, "ctx": None}
            pair = gw._issue(DI, USER)
            ca = str(sim.dir / "ca.pem")
            setup = COAP_SETUP.format(ca=ca, cis=f"coaps+tcp://127.0.0.1:{gw.tls_port}",
                                      uid=USER, access=pair["accesstoken"],
                                      refresh=pair["refreshtoken"])
            _, issued = sim.clouds["plgd"]._issue("onboard-device", "bench")
            https = HTTPS_SETUP.format(url=f"https://127.0.0.1:{sim.https_port}/plgd/oauth/token",
                                       ca=ca, refresh=issued["refresh_token"])
            rows += [
                ("plgd", "refresh + sign-in + publish, coaps+tcp, pair stored: smallest "
                 "-X heapsize", smallest_heap(setup + COAP_OP, cwd=d), "B", ""),
                ("plgd", "  the HTTPS OAuth refresh it replaces, pair stored: smallest "
                 "-X heapsize", smallest_heap(https + HTTPS_OP, cwd=d), "B", ""),
                ("plgd", "  same, modules already imported (frozen on a device): coaps+tcp",
                 smallest_heap(setup + IMPORTS + COAP_OP, cwd=d) - smallest_heap(
                     setup + IMPORTS, cwd=d), "B", "above the imports"),
                ("plgd", "  same, modules already imported: HTTPS",
                 smallest_heap(https + HTTPS_IMPORTS + HTTPS_OP, cwd=d)
                 - smallest_heap(https + HTTPS_IMPORTS, cwd=d), "B",
                 "above the imports"),
                ("plgd", "refresh + sign-in + publish, coaps+tcp (mem_peak)",
                 allocated(COAP_OP, setup, cwd=d), "B", ""),
                ("plgd", "  the HTTPS OAuth refresh it replaces (mem_peak)",
                 allocated(HTTPS_OP, https, cwd=d), "B", ""),
            ]
        finally:
            oauth.THROTTLE_LIMIT = limit
            sim.stop()
    return rows
