# TLS contexts trusting a CA file or bundle, in a module of its own: a plain
# connection (MQTT without TLS, http://) does not load this code.


def read(path):
    """The whole file at path, at most 64 KB: OSError when it cannot be read
    (missing, a folder, larger). (A folder opens on the Unix port, 2**63
    bytes long; not on a board.) Here for the device's certificate and key
    too (onboard.cloudtls)."""
    with open(path, "rb") as f:
        # its size first: read() without one grows its buffer (peaks at twice)
        n = f.seek(0, 2)
        if n > 65536:
            raise OSError  # (too big: its errno would say nothing more)
        f.seek(0)
        return f.read(n)


def context(ca, insecure=False, ctx=None):
    """An SSLContext trusting every certificate of ca: a path, or PEM or DER
    bytes, one certificate or several; an SSLContext is returned as it is.
    insecure=True (explicit) verifies nothing. ctx: a new SSLContext to use
    (made before this module was loaded, when the heap had one large block)."""
    if hasattr(ca, "wrap_socket"):
        return ca
    import tls

    if ctx is None:  # the context first: mbedTLS wants one large block, easier to find early
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    if insecure is True:  # (only True: "false" or 1 by mistake still verifies)
        ctx.verify_mode = tls.CERT_NONE  # pyright: ignore  (missing from the stubs)
        return ctx
    ctx.verify_mode = tls.CERT_REQUIRED  # pyright: ignore  (missing from the stubs)
    if ca is None:
        raise ValueError("ca: https needs one (or insecure=True)")
    if isinstance(ca, str):
        # a file that cannot be read is the config's to mend, as one that
        # does not parse: ValueError naming ca
        try:
            ca = read(ca)
        except OSError:
            raise ValueError("ca: cannot read " + ca) from None
    # mbedTLS here parses one DER certificate per call and adds it to those
    # trusted, so a bundle is loaded one certificate at a time (PEM decoded
    # from a memoryview: no copy of the file's text)
    from binascii import a2b_base64

    try:
        i = ca.find(b"-----BEGIN CERTIFICATE-----")
        while i < 0:  # DER, one certificate after another (none: IndexError)
            n = 2 + (ca[1] & 0x7F) + int.from_bytes(ca[2 : 2 + (ca[1] & 0x7F)], "big")
            # a SEQUENCE: tag, length of length, length
            ctx.load_verify_locations(ca[:n] if n < len(ca) else ca)
            ca = ca[n:]
            if not ca:
                break
        while i >= 0:
            n = ca.find(b"-----END", i)
            ctx.load_verify_locations(a2b_base64(memoryview(ca)[i + 27 : n]))  # pyright: ignore
            i = ca.find(b"-----BEGIN CERTIFICATE-----", n)
    except (ValueError, IndexError, OverflowError):
        raise ValueError("ca: not a PEM or DER certificate") from None
    return ctx
