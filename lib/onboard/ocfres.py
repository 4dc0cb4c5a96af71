# /oic/res of a plgd device (onboard.ocf), as IoTivity-Lite's with
# OC_RES_BATCH_SUPPORT and its discovery resource observable: its links
# (oic.if.ll, the default; oic.if.baseline), and every resource's content at
# once (oic.if.b), which plgd hub observes (ocf.batch) instead of each
# resource when it can, and needs by default (requireBatchObserveEnabled).
# Loaded for an answer and let go of: the gateway asks it twice a connection.
from onboard import ocf


def answer(code, iface, obs):
    """(code, options, payload) of a request on /oic/res."""
    from onboard import cbor

    if code != 1:
        return 0x85, (), b""  # 4.05
    if iface == b"oic.if.b":  # every resource's content (not /oic/res's)
        if obs is not None:  # registered (0) or cancelled (1)
            ocf.batch = None if obs == b"\x01" else ocf.conn.last  # pyright: ignore
        out = []
        for h, r in ocf.RES.items():
            out.append(ocf.item(h, r))
        return (0x45,) + ocf.reply(out)
    ifs = ["oic.if.ll", "oic.if.b", "oic.if.baseline"]
    out = [{"href": "/oic/res", "rt": ["oic.wk.res"], "if": ifs, "p": {"bm": 3},
            "anchor": ocf.anchor}] + ocf.links()
    if iface == b"oic.if.baseline":  # its properties, the links among them
        out = [{"rt": ["oic.wk.res"], "if": ifs, "links": out}]
    elif iface not in (None, b"oic.if.ll"):
        return 0x80, (), b""  # 4.00: an interface /oic/res does not have
    return 0x45, ((12, 10000),), cbor.dumps(out)
