# HTTP/1.1 messages for onboard.http (blocking) and onboard.ahttp (asyncio):
# the Response, the request's head, and the reply's framing as a generator
# that asks for more bytes by yielding, so either can feed it from its own
# connection and neither user loads the other's code.
from micropython import const

_MAX_HEAD = const(4096)
_MAX_HEADERS = const(48)


class Response:
    def __init__(self, status_code, headers, content):
        self.status_code = status_code
        self.headers = headers  # lower-case names
        self.content = content

    def __repr__(self):
        return "<Response %d>" % self.status_code

    @property
    def text(self):
        return self.content.decode()

    def json(self):
        from json import loads

        return loads(self.content)

    def close(self):
        pass  # the body is read and the socket closed before request() returns


def fail(kind, host, phase, why):
    # onboard.errors' `kind` naming host and phase. Loaded when an error
    # happens: a request that succeeds does not keep the error classes in RAM
    from onboard import errors

    return errors.fail(getattr(errors, kind), host, phase, why)


def head(method, url, body, is_json, headers):
    # -> (https?, host, port, the request's head); ValueError names the field
    scheme, sep, rest = url.partition("://")
    rest = rest.partition("#")[0]  # (a fragment is never sent)
    # the host ends at the path or the query, whichever comes first
    end = len(rest)
    for i in (rest.find("/"), rest.find("?")):
        if 0 <= i < end:
            end = i
    path = rest[end:]
    host, colon, port = rest[:end].partition(":")
    tls = scheme == "https"
    try:
        port = int(port) if colon else (443 if tls else 80)
    except ValueError:
        port = 0
    # (below: CR, LF, space or control characters would split or bend the request;
    # looked for in the UTF-8 bytes: taking a str apart by character would
    # intern each character met as a qstr, in RAM for good)
    # ("@": credentials in the URL, which onboard does not send)
    if not sep or scheme not in ("http", "https") or not host or not 0 < port < 65536 \
            or min(url.encode()) <= 32 or "@" in host:
        raise ValueError("url: malformed")
    if not path.startswith("/"):
        path = "/" + path
    head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (method, path, host)
    if is_json:
        head += "Content-Type: application/json\r\n"
    if body is not None:
        head += "Content-Length: %d\r\n" % len(body)
    for k, v in (headers or {}).items():
        v = str(v)
        if min((k + "!").encode()) <= 32 or "\r" in v or "\n" in v:  # ("!": after them all)
            raise ValueError("headers: %s: control character" % k.strip())
        head += "%s: %s\r\n" % (k, v)
    if min((method + "!").encode()) <= 32:
        raise ValueError("method: malformed")
    return tls, host, port, (head + "\r\n").encode()


def _get(buf, sep, limit):
    # (generator) with sep: the bytes before it, consumed with it (ValueError
    # past limit); without: the next `limit` bytes. EOFError when the peer
    # closes first
    while True:
        i = buf.find(sep) if sep else limit if len(buf) >= limit else -1
        if sep and i > limit:  # (a line over its bound that came whole)
            raise ValueError
        if i >= 0:
            part = bytes(memoryview(buf)[:i])  # one copy, not two
            buf[: i + len(sep)] = b""  # in place (MicroPython has no del on slices)
            return part
        if sep and len(buf) > limit:
            raise ValueError
        if not (yield):
            raise EOFError


def reply(buf, host, max_body, head_only):
    """The Response read from buf (a bytearray), as a generator that yields
    whenever it needs more bytes in buf and is sent how many arrived (0: the
    peer closed); ProtocolError names the phase."""
    phase = "status"
    try:
        status = 100
        while status < 200:  # 1xx replies (100 Continue, 102) come before the final one
            # line by line, each parsed as it comes: no copy of the whole head
            # nor a list of its lines (left: what the head may still take)
            left = _MAX_HEAD
            headers = None
            while True:
                line = yield from _get(buf, b"\r\n", left)
                left -= 2 + len(line)
                if left < 0:  # (a line that fits, its CRLF not)
                    raise ValueError
                # a control byte but tab (a bare LF, NUL): a line read two ways
                bad = min(line.replace(b"\t", b" ") + b" ") < 32
                line = line.decode()
                if headers is None:  # the status line: HTTP/1.x and 3 digits
                    line = line.split(" ", 2)
                    status = int(line[1])
                    if bad or line[0] not in ("HTTP/1.0", "HTTP/1.1") or len(line[1]) != 3 \
                            or not line[1].isdigit() or not 100 <= status <= 599:
                        raise ValueError
                    headers = {}
                    continue
                if not line:
                    break
                name, sep, value = line.partition(":")
                low, value = name.lower(), value.strip()
                # no name, or a space in it (a folded line, "Content-Length :");
                # a second, different length or coding makes the body's end
                # ambiguous; at most _MAX_HEADERS (each costs RAM)
                if bad or not sep or not name or " " in name or "\t" in name \
                        or low in ("content-length", "transfer-encoding") \
                        and headers.get(low, value) != value \
                        or len(headers) >= _MAX_HEADERS and low not in headers:
                    phase = "headers"
                    raise ValueError
                headers[low] = value
        phase = "body"
        body = b""
        n = headers.get("content-length")
        if head_only or status in (204, 304):
            pass
        elif "transfer-encoding" in headers:
            # chunked alone (another coding: a body onboard cannot read)
            if headers["transfer-encoding"].lower() != "chunked":
                raise ValueError
            from onboard.chunked import body as chunks  # (loaded for a chunked reply only)

            body = yield from chunks(buf, max_body)
        elif n is not None:
            if not n.isdigit():  # no sign, space, prefix or underscore
                raise ValueError
            if int(n) > max_body:
                raise OverflowError
            body = yield from _get(buf, b"", int(n))
        else:
            while len(buf) <= max_body:
                if not (yield):
                    return Response(status, headers, bytes(buf))
            raise OverflowError
        return Response(status, headers, body)
    except OverflowError:
        why = "larger than max_body %d" % max_body  # (only the body raises it)
    except EOFError:
        why = "connection closed before a reply" if phase == "status" else "truncated"
    except (ValueError, UnicodeError, IndexError):
        why = "malformed"
    raise fail("ProtocolError", host, phase, why)


