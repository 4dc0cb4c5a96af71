# onboard.http's request as a coroutine on asyncio streams (onboard.net's
# Conn), for code that must not block its event loop (the runtime, the cloud
# profiles, timesync). Same arguments, Response, framing, redirects and errors:
# the head and framing code is onboard.httpmsg's, the redirects onboard.redirect's.
import time

from onboard import net
from onboard.httpmsg import head, reply


async def arequest(method, url, json=None, data=None, headers=None, timeout=10, ca=None,
                   insecure=False, max_body=16384):
    """onboard.http.request() as a coroutine: the event loop keeps running
    meanwhile (the TLS handshake runs on the first send)."""
    if json is not None:
        from json import dumps

        data = dumps(json)
    body = data.encode() if isinstance(data, str) else data
    is_json = json is not None
    # one TLS context for every hop: redirects keep the scheme
    ctx = net.tls_context(ca, insecure) if url.startswith("https:") else None
    hop = 0
    deadline = net.deadline(timeout)  # (one for the whole exchange, redirects included)
    while True:
        host, port, out = head(method, url, body, is_json, headers)[1:]
        phase = "connect"
        c = net.Conn()
        try:
            await c.connect(host, port, ctx, deadline)
            phase = "tls" if ctx else "send"
            await c.send(deadline, out, body or b"")
            phase = "reply"
            g = reply(c.buf, host, max_body, method == "HEAD")
            n = None
            while True:  # g yields when it wants more bytes in c.buf
                try:
                    g.send(n)
                except StopIteration as done:
                    r = done.value
                    break
                # (fill takes what has arrived even past the deadline: checked
                # here, a peer that never stops sending is bounded too)
                if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    raise OSError(110)  # ETIMEDOUT
                n = len(await c.fill(deadline))  # pyright: ignore  (bytes, not None)
        except (OSError, ValueError, EOFError) as e:
            from onboard.errors import wrap  # (loaded when a request fails)

            raise wrap(e, host, phase) from None
        finally:
            c.close()
        if r.status_code not in (301, 302, 303, 307, 308) or not r.headers.get("location"):
            return r
        from onboard.redirect import follow

        url, method, body, is_json = follow(hop, r, url, method, body, is_json, headers)
        hop += 1
