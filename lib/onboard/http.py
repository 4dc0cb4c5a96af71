# Small blocking HTTP/1.1 client with urequests' names, straight on a socket.
# HTTPS verifies the server's certificate and host name against `ca` unless
# insecure=True is explicit. One deadline of `timeout` seconds bounds the
# exchange (connect, TLS, send, every read), so a server that trickles cannot
# hold the device. The reply's framing is onboard.httpmsg's generator, fed
# from the socket here (onboard.ahttp feeds it from asyncio streams), so a
# blocking user loads no asyncio code. What only some requests need is loaded
# then: onboard.errors when one fails, onboard.redirect when a reply
# redirects, onboard.ca for HTTPS (and let go once the context is made).
import socket
import time


def _left(s, t, tls=None, ev=0):
    # Within the deadline t (ticks): a plain socket's timeout is what is left
    # of it; a TLS one (non-blocking) is waited for, with ev (POLLIN 1,
    # POLLOUT 4), until it can go on. (mbedTLS reads a record to its end,
    # each raw read with the socket's whole timeout: a record sent a byte at
    # a time would hold a blocking TLS socket past any deadline.)
    ms = time.ticks_diff(t, time.ticks_ms())
    if ms <= 0:
        raise OSError(110)  # ETIMEDOUT
    if not tls:
        s.settimeout(ms / 1000)
    elif ev:
        from select import poll

        p = poll()
        p.register(tls, ev)
        if not p.poll(ms):
            raise OSError(110)


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
    # the message code after the context: loaded before it, its small blocks
    # scattered over the heap leave no large one (HTTPS POST: 256-512 B less
    # heap, 32-bit); it stays loaded, as a module import would have kept it
    from onboard.httpmsg import fail, head, reply

    if json is not None:
        from json import dumps

        data = dumps(json)
    body = data.encode() if isinstance(data, str) else data
    is_json = json is not None
    hop = 0
    t = time.ticks_add(time.ticks_ms(), int(timeout * 1000))  # (redirects included)
    while True:
        tls, host, port, out = head(method, url, body, is_json, headers)
        try:
            # (a lookup cannot be bounded on MicroPython: lwIP's DNS timeout applies)
            ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        except (OSError, IndexError):
            raise fail("DNSError", host, "dns", "name lookup failed") from None
        phase = "connect"
        s = None
        try:
            try:
                s = raw = socket.socket(ai[0], socket.SOCK_STREAM, ai[2])
                _left(raw, t)
                raw.connect(ai[-1])
                if tls:
                    # non-blocking, each TLS call waited for by _left; the
                    # handshake runs in the first write (phase tls until then)
                    phase = "tls"
                    raw.setblocking(False)
                    s = tls = ca.wrap_socket(  # pyright: ignore  (a context here)
                        raw, server_hostname=host, do_handshake_on_connect=False)
                else:
                    tls = None
                    phase = "send"
                # in pieces, the time left before each: a write of the whole
                # would retry each partial send with the full socket timeout
                for part in (out, body or b""):
                    i = 0
                    while i < len(part):
                        _left(raw, t, tls)
                        n = s.write(memoryview(part)[i : i + 1024])  # (a view: no copy of the head)
                        if n is None:  # (TLS: it would block)
                            _left(raw, t, tls, 4)
                            continue
                        i += n
                        phase = "send"
                out = None  # sent: its RAM is the reply's (32-bit HTTPS POST: 256 B less heap)
                phase = "reply"
                buf = bytearray()  # grows and shrinks in place
                g = reply(buf, host, max_body, method == "HEAD")
                n = None
                while True:
                    try:
                        g.send(n)
                    except StopIteration as done:
                        r = done.value
                        break
                    # recv returns what has arrived; readinto would wait to fill its
                    # buffer. Small pieces: the handshake leaves the heap in small
                    # holes, a 128-byte piece may find none (HTTPS POST: 256-512 B
                    # less heap, 32-bit)
                    _left(raw, t, tls)
                    n = s.recv(48)
                    while n is None:  # (TLS: no whole record yet)
                        _left(raw, t, tls, 1)
                        n = s.recv(48)
                    buf.extend(n)
                    n = len(n)
            finally:
                if s:
                    s.close()  # (a TLS socket holds large buffers: before anything else)
                    # (a TLS socket whose handshake failed lets go of its raw one
                    # unclosed, for the collector: MicroPython v1.25's TLS module)
                    raw.close()
        except Exception as e:  # (wrap returns what is not a network failure as it is)
            from onboard.errors import wrap

            raise wrap(e, host, phase) from None
        if r.status_code not in (301, 302, 303, 307, 308) or not r.headers.get("location"):
            return r
        from onboard.redirect import follow  # (loaded for a redirect only, the socket closed)

        url, method, body, is_json = follow(hop, r, url, method, body, is_json, headers)
        hop += 1


# three small functions: a closure each made by one maker (a lambda) kept
# about 96 B more in RAM once imported (32-bit)
def get(url, **kw):
    return request("GET", url, **kw)


def post(url, **kw):
    return request("POST", url, **kw)


def put(url, **kw):
    return request("PUT", url, **kw)
