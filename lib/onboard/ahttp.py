# onboard.http's request as a coroutine on asyncio streams (onboard.net's
# Conn), for code that must not block its event loop (the runtime, the cloud
# profiles, timesync). Same arguments, Response, framing, redirects and errors:
# the URL, head, framing and redirect code is onboard.http's.
from onboard import net
from onboard.errors import wrap
from onboard.http import _head, _hop, _reply


async def arequest(method, url, json=None, data=None, headers=None, timeout=10, ca=None,
                   insecure=False, max_body=16384):
    """onboard.http.request() as a coroutine: the event loop keeps running
    meanwhile (the TLS handshake runs on the first send)."""
    if json is not None:
        from json import dumps

        data = dumps(json)
    body = data.encode() if isinstance(data, str) else data
    is_json = json is not None
    hop = 0
    while True:
        tls, host, port, head = _head(method, url, body, is_json, headers)
        ctx = net.tls_context(ca, insecure) if tls else None
        deadline = net.deadline(timeout)
        phase = "connect"
        c = net.Conn()
        try:
            await c.connect(host, port, ctx, deadline, True)
            phase = "tls" if ctx else "send"
            await c.send(deadline, head, body or b"")
            phase = "reply"
            g = _reply(c.buf, host, max_body, method == "HEAD")
            n = None
            while True:  # g yields when it wants more bytes in c.buf
                try:
                    g.send(n)
                except StopIteration as done:
                    r = done.value
                    break
                n = len(await c.fill(deadline))  # pyright: ignore  (bytes, not None)
        except (OSError, ValueError, EOFError) as e:
            raise wrap(e, host, phase) from None
        finally:
            c.close()
        nxt = _hop(hop, r, url, method, body, is_json, headers)
        if not nxt:
            return r
        url, method, body, is_json = nxt
        hop += 1
