# The cloud's TLS credentials beyond the CA: the device's own certificate and
# key (config cert, key: paths on the flash, PEM or DER), presented to a
# server that asks for one (plgd hub does), the id its subject names, and the
# cloud's context made of them (early, by Runtime.make_tls, else by the
# session or plgd's connection). A module of its own, loaded only while
# they are used and let go of afterwards: onboard.ca, which every TLS
# connection loads (the blocking clients' too), stays small, and so does the
# runtime, which is in RAM all the time.


def _der(path):
    # the file's first PEM block as DER (mbedTLS parses DER only on the ports
    # whose config MicroPython writes: the Unix port's), but a key's curve
    # named before it (`openssl ecparam -genkey` writes EC PARAMETERS first);
    # DER as it is. OSError when it cannot be read (onboard.ca.read: at most
    # 64 KB)
    from onboard.ca import read

    b = read(path)
    i = b.find(b"-----BEGIN")
    if b.startswith(b"-----BEGIN EC PARAMETERS", i):
        i = b.find(b"-----BEGIN", i + 10)
    if i < 0:
        return b
    from binascii import a2b_base64

    i = b.find(b"\n", i) + 1
    return a2b_base64(memoryview(b)[i : b.find(b"-----END", i)])  # pyright: ignore


def load(ctx, config):
    """Load config's cert and key into the SSLContext ctx."""
    try:
        ctx.load_cert_chain(_der(config["cert"]), _der(config["key"]))
    except (OSError, ValueError):  # (mbedTLS: ValueError; a file missing: OSError)
        raise ValueError("cert, key: the device's certificate and its key") from None


def uuid(path):
    """The id a certificate's subject names as uuid:<id> (OCF's identity
    certificates name the device so), or None."""
    c = _der(path)
    i = c.rfind(b"uuid:")  # (the subject comes after the issuer)
    return c[i + 5 : i + 41].decode() if i >= 0 else None


def context(rt, ctx=None):
    """The cloud's TLS context: trusting the config's CA, presenting the
    device's certificate when the config names one (ctx: a new SSLContext
    to use). ValueError (or OSError) when one of them does not load. Lets
    go of onboard.ca and of this module: the context holds what they load."""
    from onboard import ca
    from onboard.runtime import forget

    try:
        ctx = ca.context(rt.config.get("ca"), False, ctx)
        if rt.config.get("cert"):
            load(ctx, rt.config)
        return ctx
    finally:
        forget("ca", "cloudtls")


def make_tls(rt):
    """Runtime.make_tls's context, as rt.ctx; one that does not load is left
    for the session to report (rt.ctx stays None)."""
    import tls

    try:
        # the context's one large block first, before the CA's loader
        rt.ctx = context(rt, tls.SSLContext(tls.PROTOCOL_TLS_CLIENT))
    except (OSError, ValueError):
        pass
