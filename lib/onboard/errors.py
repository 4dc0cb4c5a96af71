# The failure kinds users act on. All network ones are OSError subclasses,
# so code written for umqtt.simple / requests (except OSError: reconnect)
# keeps working. Messages name the host and the phase, never a secret.


# The kinds, made with type(): a class statement would cost each about 14 B
# more of .mpy and two more entries in its dict (__module__, __qualname__).
# NetError: the network failed, "<host>: <phase>: <why>".
NetError = type("NetError", (OSError,), {})
# DNSError: the host name did not resolve (phase "dns").
DNSError = type("DNSError", (NetError,), {})
# Timeout: a phase did not finish within the timeout.
Timeout = type("Timeout", (NetError,), {})
# TLSError: the server's certificate or host name was refused (expired, not
# yet valid, another CA, another name). A handshake cut short is a NetError.
TLSError = type("TLSError", (NetError,), {})
# ProtocolError: the peer sent something malformed, truncated or over a size
# bound.
ProtocolError = type("ProtocolError", (NetError,), {})


def fail(kind, host, phase, why):
    return kind("%s: %s: %s" % (host, phase, why))


def wrap(e, host, phase):
    """e as the NetError that names host and phase: OSErrors by errno, the
    ValueError mbedTLS raises for a certificate it refuses, EOFError as a
    closed connection. Anything else is returned as it is."""
    if isinstance(e, EOFError):
        kind, why = ProtocolError, "connection closed"
    elif isinstance(e, ValueError) and phase == "tls":
        # mbedTLS's reason ("The certificate validity has expired"): no secret
        kind, why = TLSError, "certificate refused: %s" % str(e).strip()
    elif not isinstance(e, OSError) or isinstance(e, NetError):
        return e
    else:
        why = e.errno or 0
        kind = NetError
        if why in (11, 110, 116):  # EAGAIN, ETIMEDOUT (Linux, lwIP)
            kind, why = Timeout, "timed out"
        else:
            why = "error %s" % why
    return fail(kind, host, phase, why)
