# The failure kinds users act on. All network ones are OSError subclasses,
# so code written for umqtt.simple / requests (except OSError: reconnect)
# keeps working. Messages name the host and the phase, never a secret.


class NetError(OSError):
    """The network failed: "<host>: <phase>: <why>"."""


class Timeout(NetError):
    """A phase did not finish within the timeout."""


class TLSError(NetError):
    """The server's certificate or host name did not verify, or TLS failed."""


class ProtocolError(NetError):
    """The peer sent something malformed, truncated or over a size bound."""


def fail(kind, host, phase, why):
    return kind("%s: %s: %s" % (host, phase, why))
