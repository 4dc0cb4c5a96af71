# One small module per cloud profile; import only the one a product uses.
# This file holds what their sessions share: how a reply is judged, the
# server's clock, renewal margins and the MQTT loop that keeps a device
# online while the event loop stays free.
import asyncio
import time
from micropython import const

ERR_CONFIG = const(700)
ERR_CLOUD = const(702)
ERR_TOKEN = const(703)


class Rejected(Exception):
    """The cloud refused the device's credentials (HTTP 401/403, CONNACK 4/5):
    back to setup mode with last_error 703. args[0] says which step."""


class Transient(Exception):
    """Worth retrying later; args: (step, Retry-After seconds or 0)."""


def judge(resp, step):
    """Raise Rejected or Transient unless the reply is a 2xx."""
    code = resp.status_code
    if 200 <= code < 300:
        return resp
    if code in (401, 403):
        raise Rejected(step)
    retry = 0
    if code in (429, 503):
        try:
            retry = int(resp.headers.get("retry-after", "0"))
        except ValueError:
            retry = 0
    raise Transient(step, max(0, min(retry, 3600)))


def body(resp, step, *names):
    """The named fields of a JSON object reply; Transient when it is not one."""
    try:
        doc = resp.json()
        if not isinstance(doc, dict):
            raise ValueError
        return [doc[n] for n in names]
    except (ValueError, KeyError, TypeError):
        raise Transient(step, 0) from None


def renew_margin(lifetime):
    """Seconds before expiry to renew: 10 min (lifetime > 1 h), 2 min (> 240 s),
    10 s (> 20 s), else half the lifetime."""
    if lifetime > 3600:
        return 600
    if lifetime > 240:
        return 120
    if lifetime > 20:
        return 10
    return lifetime // 2


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(text):
    """Unix seconds from an HTTP Date header ("Sun, 22 Nov 2026 00:14:00 GMT"), or None."""
    try:
        _, d, mon, y, hms, _ = text.split(" ")
        h, mi, s = (int(x) for x in hms.split(":"))
        y, m, d = int(y), _MONTHS.index(mon) + 1, int(d)
    except ValueError:
        return None
    # days since 1970-01-01 (civil calendar), independent of the device's epoch
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + h * 3600 + mi * 60 + s


class Clock:
    """Unix time once a server has told it (Date header); None until then."""

    def __init__(self):
        self.base = None
        self.at = 0

    def learn(self, resp):
        unix = http_date(resp.headers.get("date", ""))
        if unix is not None:
            self.base, self.at = unix, time.ticks_ms()

    def now(self):
        if self.base is None:
            return None
        return self.base + time.ticks_diff(time.ticks_ms(), self.at) // 1000


def mqtt_client(rt, user, password, host=None, port=None, tls=None):
    """The profile's MQTT client: TLS against the config's CA unless "tls" is
    false (or tls=False); host, port, keepalive_s and timeout_s from the config."""
    from onboard.mqtt import MQTTClient

    cfg = rt.config
    ctx = None
    if (cfg.get("tls", True) if tls is None else tls) is not False:
        from onboard.http import tls_context

        ctx = tls_context(cfg.get("ca"))
    return MQTTClient(rt.uid(), host or cfg["host"], port or cfg.get("port", 8883), user=user,
                      password=password, keepalive=cfg.get("keepalive_s", 45), ssl=ctx,
                      timeout=cfg.get("timeout_s", 10))


async def online(rt, client, topics, until_ms=None):
    """Connect client, subscribe, and serve it until setup is requested or
    until_ms (ticks) passes. Rejected on CONNACK 4/5; OSError otherwise."""
    from onboard.mqtt import MQTTException

    try:
        client.connect()
    except MQTTException as e:
        if e.args and e.args[0] in (4, 5):
            raise Rejected("mqtt") from None
        raise Transient("mqtt", 0) from None
    try:
        for topic in topics:
            client.subscribe(topic, 1)
        rt.mqtt = client
        if rt.on_online:
            rt.on_online()
        rt.set_error(0)
        if rt.state == "RUNNING":
            rt.note(online=True)  # back online without leaving RUNNING (a renewal)
        rt.set_state("RUNNING")
        while not rt.setup_requested and not rt.reconnect:
            client.check_msg()
            if until_ms is not None and time.ticks_diff(until_ms, time.ticks_ms()) <= 0:
                return
            await asyncio.sleep_ms(50)
    finally:
        rt.mqtt = None
        client.disconnect()
