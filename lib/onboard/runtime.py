# The device state machine on one asyncio loop (Blynk.Edgent's state names).
# The runtime owns the states, last_error, the store writes that follow from
# them and the cloud connection; a cloud profile (onboard.clouds.<profile>)
# only checks fields and hands back outcomes. Credentials arrive through one
# door, arrive(), whichever way they came (portal, Improv, ...).
import asyncio
import time

from onboard import clock, log, wifi
from onboard.codes import (
    CONFIGURING,
    CONNECTING_CLOUD,
    CONNECTING_NET,
    ERR_CLOUD,
    ERR_CONFIG,
    ERR_DNS,
    ERR_INTERNAL,
    ERR_NETWORK,
    ERR_TLS,
    ERR_TOKEN,
    ERROR,
    RESET_CONFIG,
    RUNNING,
    WAIT_CONFIG,
)
from onboard.store import Store

_TAG = "runtime"
_OUTBOX = 8  # application messages queued while online, at most
# the longest wait before a renewal: ticks_add() refuses more than 2**29 ms (6.2
# days) on the ESP32, less than a 7-day token's wait; a renewal comes early instead
_MAX_WAIT_MS = 1 << 28
# LED (on ms, off ms) per state: fast blink in setup, slow while connecting, on when online
LED = {WAIT_CONFIG: (100, 100), CONFIGURING: (100, 100), CONNECTING_NET: (500, 500),
       CONNECTING_CLOUD: (500, 500), RUNNING: (1000, 0), RESET_CONFIG: (50, 50),
       ERROR: (50, 950)}


def backoff_s(attempt, base=2, cap=64):
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    import random

    top = min(cap, base * (1 << min(attempt, 16)))
    return random.getrandbits(20) / (1 << 20) * top


def ap_name(vendor, name, mac):
    """"<vendor> <name>-XXXX", at most 32 bytes, XXXX from the MAC."""
    suffix = "-%02X%02X" % (mac[-2], mac[-1])
    prefix = ("%s %s" % (vendor, name)).strip().encode()[: 32 - len(suffix)]
    while True:
        try:
            return prefix.decode() + suffix
        except UnicodeError:
            prefix = prefix[:-1]  # never cut a UTF-8 character in half


def forget(*names):
    """Let go of onboard modules that are no longer needed (their code is in
    RAM when loaded from a filesystem); imported again when needed."""
    import gc
    import sys

    import onboard

    for name in names:
        sys.modules.pop("onboard." + name, None)
        if name in onboard.__dict__:
            delattr(onboard, name)
    gc.collect()


class Runtime:
    def __init__(self, config, board, store=None, profile=None):
        self.config = config
        self.board = board
        # the store; while new settings are on trial self.store is a Trial over it
        self.real = self.store = store or Store(board.store_path())
        if profile is None:
            profile = __import__("onboard.clouds." + config.get("profile", "blynk"), None, None,
                                 ["x"])
        self.profile = profile
        clock.attach(board)  # the board's clock never reads earlier than the build
        self.state = None
        self.last_error = 0
        self.portal_url = None
        self.arrived = asyncio.Event()
        self.joined = False  # what arrived has already joined (Improv)
        self.fresh = False  # credentials from setup that have not worked yet
        self.setup_requested = False
        self.session = None  # the running cloud session task
        self.outbox = []  # (topic, msg, retain, qos) for the online loop to send
        self.online = False
        self.on_message = None  # the application's hook: f(topic, msg)
        self.mac = board.unique_id()
        self.sta = None
        backoff = config.get("backoff", {})
        self.backoff = (backoff.get("base", 2), backoff.get("cap", 64))

    # -- reporting -------------------------------------------------------------

    def set_state(self, state):
        if state == self.state:
            return
        self.state = state
        log.info(_TAG, "state %s (last_error %d)", state, self.last_error)
        event = {"state": state, "portal": self.portal_url, "last_error": self.last_error}
        if self.config.get("report_heap"):
            import gc

            gc.collect()
            event["heap"] = gc.mem_alloc()  # live bytes, for the benchmarks
        self.board.emit(event)

    def note(self, **fields):
        """A device event that is not a state change (a renewal, a retry)."""
        event = {"state": self.state, "portal": self.portal_url, "last_error": self.last_error}
        event.update(fields)
        self.board.emit(event)

    def set_error(self, code):
        self.last_error = code
        if self.store.get("state").get("last_error", 0) != code:
            self.store.put("state", last_error=code)  # one write per change

    def publish(self, topic, msg, retain=False, qos=0):
        """Queue a message for the cloud; False when offline or the queue is
        full (nothing is kept for later)."""
        if not self.online or len(self.outbox) >= _OUTBOX:
            return False
        self.outbox.append((topic, msg, retain, qos))
        return True

    # -- credentials arriving ------------------------------------------------------

    def arrive(self, fields, joined=False):
        """Credentials arrived (portal, Improv, ...): check all, then store.
        ValueError("<field>: <why>") stores nothing. joined: the Wi-Fi in
        fields has just been joined (Improv), so the cloud fields may be
        left for later. When the device already has a working network and
        the request has no save=1, the new settings wait in the store as
        pending and replace the working ones only once they have worked
        (Wi-Fi joined, cloud reached); else they are stored at once."""
        if fields.get("if", "wifi") != "wifi":  # the newer Edgent names the interface
            raise ValueError("if: only wifi")
        ssid = fields.get("ssidManual") or fields.get("ssid", "")
        password = fields.get("pass", fields.get("password", ""))
        try:
            wifi.check_credentials(ssid, password)
        except ValueError as e:
            msg = str(e)
            raise ValueError("pass" + msg[8:] if msg.startswith("password") else msg) from None
        ip = wifi.check_ip(fields)
        store = self.real
        cloud = {}
        names = [f[0] for f in getattr(self.profile, "FIELDS", ())]
        # the cloud fields may be left out when the device already has a token
        if hasattr(self.profile, "check") and (
                any(fields.get(n) for n in names)
                or not (joined or store.get("cloud").get("token"))):
            cloud = self.profile.check(fields, self.config, store.get("cloud"))
        if joined or fields.get("save", "0") not in ("", "0") or not wifi.saved(store):
            self.store = store
            store.put("state", pending=None)
            wifi.remember(store, ssid, password, ip)
            if cloud:
                store.put("cloud", **cloud)
        else:
            store.put("state", pending={"ssid": ssid, "password": password, "ip": ip,
                                        "cloud": cloud})
            self.store = Trial(store)
        self.fresh = not joined
        self.joined = joined
        self.arrived.set()

    def trial(self):
        return self.store is not self.real

    def end_trial(self, code):
        """Pending settings failed: forget them, keep the working ones and
        show why in setup mode (one store write)."""
        log.warn(_TAG, "new settings failed (%d): back to the working ones", code)
        self.store = self.real
        self.last_error = code
        self.real.put("state", pending=None, last_error=code)
        self.setup_requested = True
        self.fresh = False

    def reset(self):
        bye = getattr(self.profile, "bye", None)
        if bye:  # the cloud is told first (plgd: sign out, deregister)
            asyncio.create_task(bye(self, self.real.get("cloud")))
        self.store = self.real
        self.store.clear("wifi", "enrol", "cloud")
        self.store.put("state", pending=None)
        self.set_error(0)

    def request_setup(self):
        """Open setup mode (button, cloud): the cloud session ends at once."""
        self.setup_requested = True
        if self.session:
            self.session.cancel()

    def board_info(self):
        ap = self.ap_name()
        mac = wifi.mac_text(self.mac)
        tmpl = self.config.get("tmpl_id", "")
        return {"board": self.config.get("name", "onboard"), "tmpl_id": tmpl,
                "fw_type": self.config.get("fw_type") or tmpl,
                "fw_ver": self.config.get("fw_ver", "0.0.0"),
                "ssid": ap, "bssid": wifi.mac_text(self.board.ap_mac()), "mac": mac,
                "last_error": self.last_error, "wifi_scan": True, "static_ip": True,
                "vendor": self.config.get("vendor", ""), "uid": self.uid(),
                # the newer Edgent's schema, beside the classic one
                "name": self.config.get("name", "onboard"),
                "ifs": [{"name": "wifi", "mac": mac, "scan": True, "5ghz": False,
                         "static_ip": True}]}

    def uid(self):
        return wifi.mac_text(self.mac, "")

    def ap_name(self):
        return ap_name(self.config.get("vendor", "onboard"), self.config.get("name", "device"),
                       self.mac)

    def station(self):
        # made active once; the online loop asks it every 100 ms
        if self.sta is None:
            import network

            self.sta = network.WLAN(network.STA_IF)
            self.sta.active(True)
        return self.sta

    def scan(self):
        try:
            return wifi.scan(self.station())
        except OSError:
            return []

    def join(self, ssid, password):
        """Join one network now (Improv): 0 or the last_error code."""
        return wifi.join(self.station(), ssid, password)

    # -- setup mode ----------------------------------------------------------------

    async def setup_mode(self):
        from onboard.dns import CaptiveDNS
        from onboard.portal import Portal

        opts = self.config.get("portal", {})
        self.board.start_ap(self.ap_name(), opts.get("ap_password") or None)
        portal = Portal(self.board_info, self.scan, self.arrive, self.reset,
                        reboot=self.board.reboot, host=self.board.AP_ADDRESS,
                        port=self.board.PORTAL_PORT, pop=opts.get("pop") or None,
                        fields=getattr(self.profile, "FIELDS", ()),
                        title=self.ap_name(), captive=opts.get("captive", True))
        await portal.start()
        self.portal_url = portal.root
        dns = CaptiveDNS(self.board.AP_ADDRESS, self.board.DNS_PORT, opts.get("captive", True))
        tasks = [asyncio.create_task(dns.run())]
        uart = self.board.uart()
        if uart:
            from onboard.improv import Improv

            cfg = self.config
            improv = Improv(uart, (cfg.get("name", "onboard"), cfg.get("fw_ver", "0.0.0"),
                                   self.board.CHIP, self.ap_name()),
                            self.scan, self.join, self.arrive, portal.root)
            tasks.append(asyncio.create_task(improv.run()))
        self.arrived.clear()
        await asyncio.sleep_ms(0)  # the DNS (and Improv) start before WAIT_CONFIG says so
        self.set_state(WAIT_CONFIG)
        idle_ms = int(opts.get("idle_timeout_s", 600)) * 1000
        try:
            while not self.arrived.is_set():
                try:
                    await asyncio.wait_for_ms(self.arrived.wait(), 500)
                except asyncio.TimeoutError:
                    pass
                # idle, or a short press of the button: back to the stored credentials
                if (portal.idle_ms() >= idle_ms or self.setup_requested) and (
                        wifi.saved(self.store) or self.trial()):
                    log.info(_TAG, "setup ends: back to the stored credentials")
                    self.setup_requested = False
                    break
        finally:
            # let the reply to what ended setup mode go out before the AP goes down
            t0 = time.ticks_ms()
            while portal.active and time.ticks_diff(time.ticks_ms(), t0) < 3000:
                await asyncio.sleep_ms(20)
            portal.stop()
            for t in tasks:
                t.cancel()
            self.board.stop_ap()
            self.portal_url = None
        if self.arrived.is_set():
            self.set_state(CONFIGURING)
            if not self.joined:
                self.station().disconnect()  # join again, with what just arrived

    # -- online ----------------------------------------------------------------------

    async def connect_net(self):
        sta = self.station()
        if sta.isconnected():
            return True
        self.set_state(CONNECTING_NET)
        timeout = int(self.config.get("wifi_timeout_s", 15)) * 1000
        if self.trial():
            p = self.real.get("state")["pending"]
            ssid = p["ssid"]  # pyright: ignore  (a dict: the store's JSON)
            code = await wifi.join(sta, ssid, p["password"], timeout,  # pyright: ignore
                                   p.get("ip"))  # pyright: ignore
            if code:
                self.end_trial(code)
                return False
        else:
            code, ssid = await wifi.join_saved(self.store, sta, timeout)
            if code:
                self.set_error(code)
                return False
        log.info(_TAG, "joined %s at %s", ssid, sta.ifconfig()[0])
        self.fresh = False
        return True

    async def run(self):
        self.store.load()
        state = self.store.get("state")
        self.last_error = state.get("last_error", 0)
        pending = state.get("pending")
        if pending and pending.get("ok"):  # pyright: ignore  (a dict: the store's JSON)
            switch(self.store)  # a power cut came during the switch: finish it
        elif pending:
            self.store = Trial(self.store)  # a power cut came during the trial: again
        asyncio.create_task(self.watch_button())
        asyncio.create_task(self.blink())
        attempt = 0
        while True:
            if self.setup_requested or not (wifi.saved(self.store) or self.trial()):
                self.setup_requested = False
                await self.setup_mode()
                await asyncio.sleep_ms(0)  # the cancelled setup tasks end
                forget("portal", "dns", "improv")  # setup mode's code leaves RAM
                attempt = 0
            if not await self.connect_net():
                if self.fresh or self.setup_requested:
                    self.setup_requested = True  # new credentials failed: show the user why
                else:
                    await self.wait_retry(attempt, 0)
                    attempt += 1
                continue
            self.set_state(CONNECTING_CLOUD)
            retry_after = await self.go_online()
            if retry_after is None:
                attempt = 0
                continue
            await self.wait_retry(attempt, retry_after)
            attempt += 1

    async def wait_retry(self, attempt, retry_after):
        """Sleep the full-jitter backoff, and at least Retry-After."""
        delay = max(backoff_s(attempt, *self.backoff), retry_after)
        log.info(_TAG, "retry in %d ms (attempt %d)", int(delay * 1000), attempt + 1)
        self.note(retry_in=delay, attempt=attempt + 1)
        await asyncio.sleep(delay)

    async def go_online(self):
        """One cloud session, awaited as a task that a setup request or a
        lost network cancels at once. None when it ended by itself
        (reconfigure, redirect) or the credentials were refused; else the
        Retry-After seconds (0: none) before the next try."""
        task = asyncio.create_task(self.cloud_session())
        self.session = task
        watch = asyncio.create_task(self.watch_network(task))
        try:
            return await task
        except asyncio.CancelledError:
            if self.setup_requested:
                return None
            log.warn(_TAG, "network lost")
            if self.trial():
                self.end_trial(ERR_NETWORK)
                return None
            self.set_error(ERR_NETWORK)
            return 0
        finally:
            self.session = None
            watch.cancel()

    async def watch_network(self, task):
        while self.station().isconnected():
            await asyncio.sleep_ms(100)
        task.cancel()

    async def cloud_session(self):
        """Outcomes of the profile, turned into states, errors and store
        writes. Whatever goes wrong with a cloud's reply is transient: the
        credentials stay as they are and the device never reboots for it."""
        from onboard.clouds import Rejected, Transient
        from onboard.errors import DNSError, NetError, TLSError

        try:
            if not clock.is_known():
                if not await clock.sync(self.config):
                    # TLS will check dates against the build time; SNTP again next time
                    log.warn(_TAG, "time unknown: no time source answered")
                forget("timesync")
            await self.serve()
            return None
        except Rejected as e:
            log.warn(_TAG, "credentials refused at %s", e.args[0])
            if self.trial():
                self.end_trial(e.args[1] if len(e.args) > 1 else ERR_TOKEN)
                return None
            if len(e.args) > 2:
                self.store.put("cloud", **e.args[2])
            self.set_error(e.args[1] if len(e.args) > 1 else ERR_TOKEN)
            self.setup_requested = True
            return None
        except Transient as e:
            log.warn(_TAG, "cloud: %s failed, will retry", e.args[0])
            code, retry = ERR_CLOUD, e.args[1] if len(e.args) > 1 else 0
        except OSError as e:
            log.warn(_TAG, "cloud: %s", str(e) if isinstance(e, NetError) else "network error")
            code, retry = (ERR_TLS if isinstance(e, TLSError)
                           else ERR_DNS if isinstance(e, DNSError) else ERR_CLOUD), 0
        except MemoryError:
            raise  # not the cloud's doing: a fragmented heap is mended by a reboot (704)
        except Exception as e:  # noqa: BLE001  a reply nobody expected: try again later
            log.warn(_TAG, "cloud: unexpected %s, will retry", type(e).__name__)
            code, retry = ERR_CLOUD, 0
        if self.trial():  # new settings that did not reach the cloud: the working ones again
            self.end_trial(code)
            return None
        self.set_error(code)
        return retry

    async def serve(self):
        """Start the profile's link, store what it checked, stay online until
        renewal is due (then again) or an outcome ends the session."""
        from onboard import clouds

        profile = self.profile
        while True:
            link = await profile.start(self)
            forget("http")  # the profile's HTTPS is over until the next renewal
            if link.get("store"):
                self.store.put("cloud", **link["store"])  # before it is used
            if link.get("renewed"):
                self.note(renewed=True)
            renew_s = link.get("renew_s")
            due = None if renew_s is None else time.ticks_add(
                time.ticks_ms(), min(int(renew_s * 1000), _MAX_WAIT_MS))
            if link.get("serve"):  # a session of the profile's own (plgd's CoAP)
                outcome = await link["serve"]
                if outcome is None:
                    continue  # its renewal is due
            elif link.get("mqtt"):
                outcome = await self.mqtt_session(link, due)
            else:
                self.now_online()
                outcome = None
                while due is not None and time.ticks_diff(due, time.ticks_ms()) > 0:
                    await asyncio.sleep_ms(min(1000, time.ticks_diff(due, time.ticks_ms())))
            if outcome is None:
                if due is None:
                    return  # nothing more to do
                continue  # renewal due
            kind = outcome[0]
            if kind == clouds.RECONFIGURE:
                self.setup_requested = True
                return
            if kind == clouds.REBOOT:
                log.info(_TAG, "reboot asked by the cloud")
                self.board.reboot()
                return
            if kind == clouds.REDIRECT:
                self.store.put("cloud", **outcome[1])  # followed at the next start
                self.set_state(CONNECTING_CLOUD)

    def now_online(self):
        if self.trial():
            log.info(_TAG, "new settings worked: they replace the working ones")
            self.store = self.real
            switch(self.store)
        self.set_error(0)
        if self.state == RUNNING:
            self.note(online=True)  # back online without leaving RUNNING (a renewal)
        self.set_state(RUNNING)

    def mqtt_client(self, user, password, host=None, port=None, tls=None):
        """The profile's MQTT client: TLS against the config's CA unless "tls"
        is false; host, port, keepalive_s and timeout_s from the config."""
        from onboard.amqtt import MQTTClient
        from onboard.net import tls_context

        cfg = self.config
        ctx = None
        if (cfg.get("tls", True) if tls is None else tls) is not False:
            ctx = tls_context(cfg.get("ca"))
        return MQTTClient(self.uid(), host or cfg["host"], port or cfg.get("port", 8883),
                          user=user, password=password, keepalive=cfg.get("keepalive_s", 45),
                          ssl=ctx, timeout=cfg.get("timeout_s", 10))

    async def mqtt_session(self, link, due):
        """Connect, subscribe, say hello and serve the link until renewal is
        due (None) or a downlink ends the session (its outcome)."""
        from onboard.amqtt import MQTTException
        from onboard.clouds import HANDLED, PUBLISH, Rejected, Transient

        client = self.mqtt_client(*link["mqtt"])
        forget("ca")  # the TLS context holds the certificates now
        got = []
        cloud = self.store.get("cloud")

        def arrived(topic, msg):
            outcome = self.profile.downlink(cloud, topic, msg)
            if outcome is None:
                if self.on_message:
                    self.on_message(topic, msg)
                else:
                    self.note(message=topic.decode())
                    echo = getattr(self.profile, "echo", None)
                    answer = echo and echo(cloud, topic, msg)
                    if answer:
                        outcome = (PUBLISH,) + answer
            if outcome and outcome[0] != HANDLED:
                got.append(outcome)

        client.set_callback(arrived)
        try:
            try:
                await client.aconnect()
            except MQTTException as e:
                if e.args and e.args[0] in (4, 5):
                    raise Rejected("mqtt") from None
                raise Transient("mqtt", 0) from None
            for topic in link.get("topics", ()):
                await client.asubscribe(topic, 1)
            for topic, msg, retain in link.get("hello", ()):
                await client.apublish(topic, msg, retain, 1)
            self.outbox = []
            self.online = True
            self.now_online()
            while True:
                while self.outbox:
                    await client.apublish(*self.outbox.pop(0))
                while got:
                    outcome = got.pop(0)
                    if outcome[0] != PUBLISH:
                        return outcome
                    await client.apublish(outcome[1], outcome[2], False, 1)
                wait = 1000
                if due is not None:
                    wait = min(wait, time.ticks_diff(due, time.ticks_ms()))
                    if wait <= 0:
                        return None
                await client.await_msg(wait)
        finally:
            self.online = False
            client.disconnect()

    # -- the board -------------------------------------------------------------------

    async def blink(self):
        """Show the state on the board's LED."""
        on = False
        while True:
            on_ms, off_ms = LED.get(self.state or "", (0, 1000))
            on = not on if off_ms and on_ms else bool(on_ms)
            self.board.led(on)
            await asyncio.sleep_ms(on_ms if on else off_ms or 1000)

    async def watch_button(self):
        """Hold >= 10 s: reset the configuration. A 1-3 s press: setup mode,
        keeping the stored credentials."""
        pressed_at = None
        while True:
            await asyncio.sleep_ms(50)
            down = self.board.button()
            now = time.ticks_ms()
            if pressed_at is None:
                if down:
                    pressed_at = now
            elif down and time.ticks_diff(now, pressed_at) >= 10000:
                pressed_at = None
                self.set_state(RESET_CONFIG)
                self.reset()
                self.request_setup()
                while self.board.button():
                    await asyncio.sleep_ms(50)
            elif not down:
                held = time.ticks_diff(now, pressed_at)
                pressed_at = None
                if 1000 <= held <= 3000:
                    log.info(_TAG, "button: setup mode")
                    self.request_setup()


class Trial:
    """The store as settings on trial see it: the pending cloud fields over
    the stored ones; cloud writes go to the pending record (state.pending),
    everything else to the store."""

    def __init__(self, store):
        self.real = store

    def __getattr__(self, name):
        return getattr(self.real, name)

    def get(self, section):
        got = self.real.get(section)
        if section == "cloud":
            for k, v in self.real.get("state")["pending"]["cloud"].items():
                if v is None:
                    got.pop(k, None)
                else:
                    got[k] = v
        return got

    def put(self, section, **fields):
        if section != "cloud":
            return self.real.put(section, **fields)
        p = self.real.get("state")["pending"]
        p["cloud"].update(fields)
        return self.real.put("state", pending=p)


def switch(store):
    """Pending settings that worked replace the working ones. Each step is
    one store write and can be done again, so a power cut at any instant
    leaves the old settings with the pending ones (tried again at boot) or
    the switch marked ok (finished at boot)."""
    p = store.get("state").get("pending")
    if not p:
        return
    if not p.get("ok"):
        p["ok"] = True
        store.put("state", pending=p)
    wifi.remember(store, p["ssid"], p["password"], p.get("ip"))
    if p["cloud"]:
        store.put("cloud", **p["cloud"])
    store.put("state", pending=None)


def main(board, config_path=None):
    """Load the config and run the device forever. A config it cannot use
    shows ERROR with 700 and waits (rebooting would not help); anything
    unexpected shows ERROR with 704 and reboots after 10 s."""
    import json

    try:
        with open(config_path or board.config_path()) as f:
            config = json.load(f)
        rt = Runtime(config, board)
    except (OSError, ValueError, ImportError, AttributeError) as e:
        log.error(_TAG, "config unusable: %s", type(e).__name__)
        board.emit({"state": ERROR, "portal": None, "last_error": ERR_CONFIG})
        while True:
            board.led(True)
            time.sleep_ms(50)
            board.led(False)
            time.sleep_ms(950)
    try:
        asyncio.run(rt.run())
    except Exception as e:  # noqa: BLE001  the device must come back by itself
        log.error(_TAG, "internal error: %s", type(e).__name__)
        rt.set_error(ERR_INTERNAL)
        rt.set_state(ERROR)
        time.sleep(10)
        board.reboot()
