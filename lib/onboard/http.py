# Small blocking HTTP/1.1 client with urequests' names, straight on a socket.
# HTTPS verifies the server's certificate and host name against `ca` unless
# insecure=True is explicit. One deadline of `timeout` seconds bounds the
# exchange (connect, TLS, send, every read), so a server that trickles cannot
# hold the device. The reply's framing is a generator that asks for more
# bytes by yielding: request() feeds it from its socket, and onboard.ahttp's
# arequest() from asyncio streams, so the blocking user loads no asyncio code.
import socket
import time
from micropython import const

_MAX_HEAD = const(4096)


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


def _fail(kind, host, phase, why):
    # onboard.errors' `kind` naming host and phase. Loaded when an error
    # happens: a request that succeeds does not keep the error classes in RAM
    from onboard import errors

    return errors.fail(getattr(errors, kind), host, phase, why)


def _split(url):
    # -> (https?, host, port, path); errors name the field, not the URL
    scheme, sep, rest = url.partition("://")
    hostport, slash, path = rest.partition("/")
    host, colon, port = hostport.partition(":")
    tls = scheme == "https"
    try:
        port = int(port) if colon else (443 if tls else 80)
    except ValueError:
        port = 0
    # (below: CR, LF, space or control characters would split or bend the request)
    if not sep or scheme not in ("http", "https") or not host or not 0 < port < 65536 \
            or min(url) <= " ":
        raise ValueError("url: malformed")
    return tls, host, port, slash + path


def _head(method, url, body, is_json, headers):
    # -> (https?, host, port, the request's head); ValueError names the field
    tls, host, port, path = _split(url)
    head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (method, path or "/", host)
    if is_json:
        head += "Content-Type: application/json\r\n"
    if body is not None:
        head += "Content-Length: %d\r\n" % len(body)
    for k, v in (headers or {}).items():
        v = str(v)
        if min(k + "!") <= " " or "\r" in v or "\n" in v:  # ("!": sorts after them all)
            raise ValueError("headers: %s: line break or control character" % k.strip())
        head += "%s: %s\r\n" % (k, v)
    if min(method + "!") <= " ":
        raise ValueError("method: malformed")
    return tls, host, port, (head + "\r\n").encode()


def _get(buf, sep, limit):
    # (generator) with sep: the bytes before it, consumed with it (ValueError
    # past limit); without: the next `limit` bytes. EOFError when the peer
    # closes first
    while True:
        i = buf.find(sep) if sep else limit if len(buf) >= limit else -1
        if i >= 0:
            part = bytes(memoryview(buf)[:i])  # one copy, not two
            buf[: i + len(sep)] = b""  # in place (MicroPython has no del on slices)
            return part
        if sep and len(buf) > limit:
            raise ValueError
        if not (yield):
            raise EOFError


def _reply(buf, host, max_body, head_only):
    """The Response read from buf (a bytearray), as a generator that yields
    whenever it needs more bytes in buf and is sent how many arrived (0: the
    peer closed); ProtocolError names the phase."""
    phase = "status"
    try:
        status = 100
        while status < 200:  # 1xx replies (100 Continue, 102) come before the final one
            lines = (yield from _get(buf, b"\r\n\r\n", _MAX_HEAD)).decode().split("\r\n")
            parts = lines[0].split(" ")
            status = int(parts[1])
            if not parts[0].startswith("HTTP/1.") or not 100 <= status <= 599:
                raise ValueError
        phase = "headers"
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            # a second, different Content-Length makes the body's end ambiguous
            if not sep or name == "content-length" and headers.get(name, value) != value:
                raise ValueError
            headers[name] = value
        del lines
        phase = "body"
        body = b""
        n = headers.get("content-length")
        if head_only or status in (204, 304):
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
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
        raise _fail("ProtocolError", host, "body", "larger than max_body %d" % max_body) from None
    except EOFError:
        why = "connection closed before a reply" if phase == "status" else "truncated"
        raise _fail("ProtocolError", host, phase, why) from None
    except (ValueError, UnicodeError, IndexError):
        raise _fail("ProtocolError", host, phase, "malformed") from None


def _left(s, t):
    # the socket's timeout: what is left until the deadline t (ticks)
    ms = time.ticks_diff(t, time.ticks_ms())
    if ms <= 0:
        raise OSError(110)  # ETIMEDOUT
    s.settimeout(ms / 1000)


def request(method, url, json=None, data=None, headers=None, timeout=10, ca=None,
            insecure=False, max_body=16384):
    """One HTTP request; returns a Response with the whole body read."""
    # the TLS context first, while the heap is least fragmented (mbedTLS wants
    # one large block); redirects keep the scheme, so it serves every hop
    if url.startswith("https:"):
        import sys

        kept = "onboard.ca" in sys.modules
        import onboard.ca  # (only HTTPS loads it)

        ca = onboard.ca.context(ca, insecure)
        if not kept:  # let go of the loader: the handshake and the reply want the RAM
            del sys.modules["onboard.ca"], onboard.ca
    if json is not None:
        from json import dumps

        data = dumps(json)
    body = data.encode() if isinstance(data, str) else data
    is_json = json is not None
    hop = 0
    while True:
        tls, host, port, head = _head(method, url, body, is_json, headers)
        t = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        phase = "connect"
        s = raw = None
        try:
            try:
                try:
                    # (a lookup cannot be bounded on MicroPython: lwIP's DNS timeout applies)
                    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
                except (OSError, IndexError):
                    raise _fail("DNSError", host, "dns", "name lookup failed") from None
                s = raw = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
                _left(raw, t)
                raw.connect(ai[-1])
                if tls:
                    phase = "tls"
                    _left(raw, t)
                    s = ca.wrap_socket(raw, server_hostname=host)  # pyright: ignore  (a context here)
                phase = "send"
                _left(raw, t)
                s.write(head)
                head = None  # (not kept while the reply is read)
                if body:
                    s.write(body)
                phase = "reply"
                buf = bytearray()  # grows and shrinks in place
                g = _reply(buf, host, max_body, method == "HEAD")
                n = None
                while True:
                    try:
                        g.send(n)
                    except StopIteration as done:
                        r = done.value
                        break
                    _left(raw, t)
                    # recv returns what has arrived; readinto would wait to fill its buffer
                    n = s.recv(128)
                    if n is None:  # the TLS layer would block: the timeout passed
                        raise OSError(110)
                    buf.extend(n)
                    n = len(n)
            finally:
                if s:
                    s.close()  # (a TLS socket holds large buffers: before anything else)
        except (OSError, ValueError, EOFError) as e:
            from onboard.errors import wrap

            raise wrap(e, host, phase) from None
        if r.status_code not in (301, 302, 303, 307, 308) or not r.headers.get("location"):
            return r
        from onboard.redirect import follow  # (loaded for a redirect only, the socket closed)

        url, method, body, is_json = follow(hop, r, url, method, body, is_json, headers)
        hop += 1


def _verb(method):
    return lambda url, **kw: request(method, url, **kw)


get, post, put = _verb("GET"), _verb("POST"), _verb("PUT")
