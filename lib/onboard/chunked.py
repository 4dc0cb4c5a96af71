# A chunked reply's body, for onboard.httpmsg's reply(), in a module of its
# own: loaded when a server sends one (Transfer-Encoding: chunked), so a
# request answered with a Content-Length does not keep this code in RAM.
from onboard.httpmsg import _get


def body(buf, max_body):
    """(generator, as reply()) The body decoded from buf; OverflowError past
    max_body, ValueError when malformed."""
    body = b""
    while True:
        n = (yield from _get(buf, b"\r\n", 64)).split(b";")[0]
        if not n or n.strip(b"0123456789abcdefABCDEF"):  # hex digits only
            raise ValueError
        n = int(n, 16)
        if len(body) + n > max_body:
            raise OverflowError
        if not n:
            break
        body += yield from _get(buf, b"", n)
        if (yield from _get(buf, b"", 2)) != b"\r\n":
            raise ValueError
    while (yield from _get(buf, b"\r\n", 256)):
        pass  # trailers
    return body
