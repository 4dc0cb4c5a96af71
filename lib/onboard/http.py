# Small HTTP/1.1 client with urequests' names. HTTPS verifies the server's
# certificate and host name against `ca` unless insecure=True is explicit.
# One deadline of `timeout` seconds bounds the exchange (connect, TLS, send,
# every read), so a server that trickles cannot hold the device. request()
# blocks; arequest() is the same code on asyncio streams.
from micropython import const

from onboard import net
from onboard.errors import NetError, ProtocolError, fail, wrap
from onboard.net import tls_context  # noqa: F401  (its old home, for callers)

_MAX_HEAD = const(4096)
_MAX_REDIRECTS = const(3)


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
        import json

        return json.loads(self.content)

    def close(self):
        pass  # the body is read and the socket closed before request() returns


def _unsafe(text):
    # CR, LF, space or control characters would split or bend the request
    for c in text:
        if c <= " ":
            return True
    return False


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
    if not sep or scheme not in ("http", "https") or not host or not 0 < port < 65536 \
            or _unsafe(url):
        raise ValueError("url: malformed")
    return tls, host, port, slash + path


async def _upto(c, sep, deadline, limit):
    # bytes before sep (consumed with it); ValueError past limit or at EOF
    while True:
        i = c.buf.find(sep)
        if i >= 0:
            return await c.take(i, deadline, len(sep))
        if len(c.buf) > limit or not await c.fill(deadline):
            raise ValueError


async def _reply(c, host, max_body, head_only, deadline):
    phase = "status"
    try:
        status = 100
        while status < 200:  # 1xx replies (100 Continue, 102) come before the final one
            lines = (await _upto(c, b"\r\n\r\n", deadline, _MAX_HEAD)).decode().split("\r\n")
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
        if head_only or status in (204, 304):
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                n = (await _upto(c, b"\r\n", deadline, 64)).split(b";")[0]
                if not n or n.strip(b"0123456789abcdefABCDEF"):  # hex digits only
                    raise ValueError
                n = int(n, 16)
                if len(body) + n > max_body:
                    raise OverflowError
                if not n:
                    break
                body += await c.take(n, deadline)
                if await c.take(2, deadline) != b"\r\n":
                    raise ValueError
            while await _upto(c, b"\r\n", deadline, 256):
                pass  # trailers
        elif "content-length" in headers:
            n = headers["content-length"]
            if not n.isdigit():  # no sign, space, prefix or underscore
                raise ValueError
            n = int(n)
            if n > max_body:
                raise OverflowError
            body = await c.take(n, deadline)
        else:
            while not c.eof:
                if len(c.buf) > max_body:
                    raise OverflowError
                await c.fill(deadline)
            body = bytes(c.buf)
        return Response(status, headers, body)
    except OverflowError:
        raise fail(ProtocolError, host, "body", "larger than max_body %d" % max_body) from None
    except (ValueError, UnicodeError, EOFError, IndexError):
        why = "malformed"
        if c.eof:
            why = "connection closed before a reply" if phase == "status" else "truncated"
        raise fail(ProtocolError, host, phase, why) from None


async def _request(aio, method, url, json=None, data=None, headers=None, timeout=10, ca=None,
                   insecure=False, max_body=16384):
    if json is not None:
        import json as _json

        data = _json.dumps(json)
    body = data.encode() if isinstance(data, str) else data
    for _ in range(_MAX_REDIRECTS + 1):
        tls, host, port, path = _split(url)
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (method, path or "/", host)
        if json is not None:
            head += "Content-Type: application/json\r\n"
        if body is not None:
            head += "Content-Length: %d\r\n" % len(body)
        for k, v in (headers or {}).items():
            v = str(v)
            if _unsafe(k) or "\r" in v or "\n" in v:
                raise ValueError("headers: %s: line break or control character" % k.strip())
            head += "%s: %s\r\n" % (k, v)
        if _unsafe(method):
            raise ValueError("method: malformed")
        ctx = net.tls_context(ca, insecure) if tls else None
        deadline = net.deadline(timeout)
        phase = "connect"
        conn = net.Conn()
        try:
            await conn.connect(host, port, ctx, deadline, aio)
            phase = "tls" if ctx else "send"
            await conn.send(deadline, (head + "\r\n").encode(), body or b"")
            phase = "reply"
            resp = await _reply(conn, host, max_body, method == "HEAD", deadline)
        except (OSError, ValueError, EOFError) as e:
            raise wrap(e, host, phase) from None
        finally:
            conn.close()
        loc = resp.headers.get("location")
        if resp.status_code not in (301, 302, 303, 307, 308) or not loc:
            return resp
        if loc.startswith("/"):
            loc = url[: len(url) - len(path)] + loc
        new = _split(loc)
        if resp.status_code == 303 or (resp.status_code < 303 and method == "POST"):
            method, body, json = "GET", None, None
        # never to another scheme; to another host or port only without a body
        # or the caller's headers (credentials stay with the origin they were for)
        if new[0] != tls or (new[1].lower(), new[2]) != (host.lower(), port) and (
                body is not None or headers):
            raise fail(NetError, host, "redirect", "to another origin refused")
        url = loc
    raise fail(NetError, host, "redirect", "more than %d redirects" % _MAX_REDIRECTS)


def request(method, url, **kw):
    """request(method, url, *, json=None, data=None, headers=None, timeout=10,
    ca=None, insecure=False, max_body=16384): one HTTP request; returns a
    Response with the whole body read."""
    return net.run(_request(False, method, url, **kw))


def arequest(method, url, **kw):
    """request() as a coroutine: the event loop keeps running meanwhile."""
    return _request(True, method, url, **kw)


def get(url, **kw):
    return request("GET", url, **kw)


def post(url, **kw):
    return request("POST", url, **kw)


def put(url, **kw):
    return request("PUT", url, **kw)
