# AP-mode reconfigure portal speaking Blynk.Edgent's local API, so existing
# provisioning apps work, and popping up as a captive portal. Everything that
# arrives is bounded (head 2 KB, body 1 KB, 4 connections, 5 s a request)
# and validated before anything is stored; over a limit a client gets a 4xx
# and is closed, and the portal keeps serving.
import asyncio
import json
import time
from micropython import const

from onboard import log

_MAX_HEAD = const(2048)
_MAX_BODY = const(1024)
_MAX_CONN = const(4)
_REQUEST_MS = const(5000)
_POP_TRIES = const(5)
_LOCK_MS = const(60000)
_TAG = const("portal")
# phone probes that may come addressed to the portal itself (other hosts are redirected anyway)
_PROBES = const(("/generate_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt"))
_API = const(("/board_info.json", "/wifi_scan.json", "/config", "/reset", "/reboot"))


class Refused(Exception):
    """Ends a request with (status, message)."""


def _hex(c):
    # value of one hex digit (a byte), -1 when it is not one; int(x, 16)
    # would also take a sign, a space, an underscore or a "0x"
    if 0x30 <= c <= 0x39:
        return c - 0x30
    c |= 0x20
    return c - 0x57 if 0x61 <= c <= 0x66 else -1


def unquote(raw, field):
    """Complete percent-decoding of a query or form value (bytes): + is a
    space, % and exactly two hex digits a byte, the result UTF-8.
    ValueError names the field."""
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x2B:  # +
            out.append(0x20)
        elif c == 0x25:  # %
            hi = _hex(raw[i + 1]) if i + 1 < n else -1
            lo = _hex(raw[i + 2]) if i + 2 < n else -1
            if hi < 0 or lo < 0:
                raise ValueError("%s: bad percent-encoding" % field)
            out.append(hi << 4 | lo)
            i += 2
        else:
            out.append(c)
        i += 1
    try:
        return out.decode()
    except UnicodeError:
        raise ValueError("%s: not UTF-8" % field) from None


def parse_form(raw):
    """Fields of a query string or form body (bytes) as a dict of str."""
    fields = {}
    for part in raw.split(b"&"):
        if part:
            key, _, value = part.partition(b"=")
            name = unquote(key, "field name")
            fields[name] = unquote(value, name)
    return fields


class Portal:
    """Serve the portal: Portal(...).start() inside a running event loop.

    info() -> board_info dict; scan() -> networks for /wifi_scan.json;
    apply(fields) stores credentials and raises ValueError("<field>: <why>")
    before storing anything when a field is invalid; reset() forgets the
    configuration; reboot() restarts. fields names the extra form fields of
    the active cloud profile: [(name, label, secret?)]. captive: phone probes
    and pages of other hosts get a 302 to the portal (the API paths answer
    whatever the Host)."""

    def __init__(self, info, scan, apply, reset, reboot=None, host="192.168.4.1", port=80,
                 pop=None, fields=(), title="Device setup", captive=True):
        self.info, self.scan, self.apply, self.reset, self.reboot = info, scan, apply, reset, reboot
        self.host, self.port, self.pop, self.captive = host, port, pop, captive
        self.fields, self.title = fields, title
        self.root = "http://%s%s/" % (host, "" if port == 80 else ":%d" % port)
        self.active = 0
        self.served = 0
        self.last_request = time.ticks_ms()
        self._pop_failures = 0
        self._locked_until = None
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "0.0.0.0", self.port)
        log.info(_TAG, "serving %s", self.root)
        return self

    def stop(self):
        if self.server:
            self.server.close()
            self.server = None

    def idle_ms(self):
        return time.ticks_diff(time.ticks_ms(), self.last_request)

    async def _serve(self, reader, writer):
        status, body, ctype, extra = 429, "too many connections", "application/json", ""
        method = [None]  # the request's method, once _handle has read it
        self.active += 1
        try:
            if self.active <= _MAX_CONN:
                try:
                    # the bound is on receiving the request; what it asks for is done
                    # after, untimed: a reply always tells what was done (a slow flash
                    # write must not be answered 408 after it stored the settings)
                    got = await asyncio.wait_for_ms(self._handle(reader, method), _REQUEST_MS)
                    status, body, ctype, extra = got if len(got) == 4 else self._route(*got)
                except asyncio.TimeoutError:
                    status, body = 408, "request timeout"
                except Refused as e:
                    status, body = e.args
                except Exception as e:  # noqa: BLE001  the portal must keep serving
                    log.warn(_TAG, "request failed: %s", type(e).__name__)
                    # out of memory is not the client's fault: the same request may work later
                    status, body = (503, "out of memory, try again") if isinstance(
                        e, MemoryError) else (400, "bad request")
            if status >= 400 and ctype == "application/json" and not str(body).startswith("{"):
                body = json.dumps({"status": "error", "msg": body})
            if isinstance(body, str):
                body = body.encode()
            # the reason phrase is for people; clients read the status code
            writer.write(("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                          "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n"
                          % (status, "OK" if status < 300 else "Found" if status < 400
                             else "Error", ctype, len(body), extra)).encode())
            if method[0] != "HEAD":  # HEAD: GET's status and headers, no body
                writer.write(body)
            await asyncio.wait_for_ms(writer.drain(), _REQUEST_MS)
        except Exception:  # noqa: BLE001  a client that vanished
            pass
        finally:
            self.active -= 1
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def _handle(self, reader, seen):
        head = b""
        while True:
            end = head.find(b"\r\n\r\n")
            end = (end, 4) if end >= 0 else (head.find(b"\n\n"), 2)
            if 0 <= end[0] <= _MAX_HEAD - end[1]:  # (its blank line counted too)
                break
            if len(head) > _MAX_HEAD:
                raise Refused(431, "request head over %d bytes" % _MAX_HEAD)
            part = await reader.read(256)
            if not part:
                raise Refused(400, "incomplete request")
            head += part
        body = head[end[0] + end[1] :]
        lines = head[: end[0]].replace(b"\r", b"").split(b"\n")
        del head
        try:
            method, target, version = lines[0].decode().split(" ")
            headers = {}
            for line in lines[1:]:
                k, sep, v = line.decode().partition(":")
                if not sep:
                    raise ValueError
                headers[k.strip().lower()] = v.strip()
        except (ValueError, UnicodeError):
            raise Refused(400, "malformed request") from None
        if not version.startswith("HTTP/1."):
            raise Refused(400, "malformed request")
        if method not in ("GET", "POST", "HEAD"):
            raise Refused(405, "method not allowed")
        seen[0] = method
        if "chunked" in headers.get("transfer-encoding", ""):
            raise Refused(411, "send a Content-Length")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            raise Refused(413, "body over %d bytes" % _MAX_BODY)
        while len(body) < length:
            part = await reader.read(length - len(body))
            if not part:
                raise Refused(400, "body shorter than Content-Length")
            body += part
        self.last_request = time.ticks_ms()
        self.served += 1
        path, _, query = target.partition("?")
        host = headers.get("host", self.host).split(":")[0]
        if self.captive and path not in _API and (
                path in _PROBES or host not in (self.host, "blynk.setup")):
            return 302, '<a href="%s">Device setup</a>' % self.root, "text/html", \
                "Location: %s\r\n" % self.root
        # (the finished coroutine keeps its variables for as long as its task
        # is linked to: the request's lines and headers go now, before what it
        # asks for is done; the body is the one returned)
        is_json = "json" in headers.get("content-type", "")
        lines = part = line = headers = None
        body = body[:length]
        return method, path, query, is_json, body  # routed by _serve

    def _route(self, method, path, query, is_json, body):
        if path == "/":
            from onboard.page import form  # the browser's page: not loaded for apps

            return 200, form(self), "text/html; charset=utf-8", ""
        if path == "/board_info.json":
            return 200, json.dumps(self.info()), "application/json", ""
        if path == "/wifi_scan.json":
            return 200, json.dumps(self.scan()[:15]), "application/json", ""
        if path not in ("/config", "/reset", "/reboot"):
            raise Refused(404, "not found")
        if method == "HEAD":
            # these act; a HEAD (a link checker, a prefetch) must change nothing
            return 405, "method not allowed", "application/json", "Allow: GET, POST\r\n"
        try:
            fields = parse_form(query.encode())
            if body:
                if is_json:
                    doc = json.loads(body)
                    if not isinstance(doc, dict):
                        raise ValueError("body: must be a JSON object")
                    # null means absent, a number is its text; true/false, lists
                    # and objects are refused naming the field
                    for k, v in doc.items():
                        t = type(v)
                        if v is None:
                            fields.pop(k, None)
                        elif t is str:
                            fields[k] = v
                        elif t is int or t is float:
                            fields[k] = json.dumps(v)
                        else:
                            raise ValueError("%s: must be text or a number" % k)
                else:
                    fields.update(parse_form(body))
        except ValueError as e:  # a request that does not parse (a value refused: 500, below)
            return self._reply(400, str(e) if ":" in str(e) else "body: malformed", {})
        html = fields.pop("ui", None) == "1"
        if path == "/reboot":
            if self.reboot:
                asyncio.create_task(self._later(self.reboot))
            return self._reply(200, "Rebooting", fields, html)
        denied = self._check_pop(fields.pop("pop", None))
        if denied:
            return self._reply(403, denied, fields, html)
        if path == "/reset":
            self.reset()
            return self._reply(200, "Configuration reset", fields, html)
        try:
            self.apply(fields)
        except ValueError as e:
            return self._reply(500, str(e), fields, html)  # Edgent's status for a bad value
        return self._reply(200, "Configuration saved" if fields.get("save", "0") not in ("", "0")
                           else "Trying to connect...", fields, html)

    async def _later(self, fn):
        await asyncio.sleep_ms(200)  # let the reply go out first
        fn()

    def _reply(self, status, msg, fields, html=False):
        if html:
            from onboard.page import result

            return status, result(self.title, status, msg), "text/html; charset=utf-8", ""
        return status, json.dumps({"status": "ok" if status == 200 else "error", "msg": msg}), \
            "application/json", ""

    def _check_pop(self, given):
        # proof of possession for /config and /reset: 5 failures lock both for 60 s
        if not self.pop:
            return None
        now = time.ticks_ms()
        if self._locked_until is not None:
            left = time.ticks_diff(self._locked_until, now)
            if left > 0:
                return "pop: locked, try again in %d s" % ((left + 999) // 1000)
            self._locked_until = None
            self._pop_failures = 0
        if given is not None:
            # compared without stopping at the first difference, byte by byte: each
            # character taken out of a str would be interned, the secret's in RAM for good
            a, b = given.encode(), self.pop.encode()
            diff = len(a) ^ len(b)
            for x, y in zip(a, b):
                diff |= x ^ y
            if not diff:
                self._pop_failures = 0
                return None
        self._pop_failures += 1
        if self._pop_failures >= _POP_TRIES:
            self._locked_until = time.ticks_add(now, _LOCK_MS)
            log.warn(_TAG, "proof of possession failed %d times: locked", _POP_TRIES)
        return "pop: missing or wrong"
