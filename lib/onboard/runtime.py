# The device state machine on one asyncio loop (Blynk.Edgent's state names).
# Setup mode runs the portal, captive DNS and Improv; credentials "arrive"
# through apply(), whichever way they came. A cloud profile module
# (onboard.clouds.<profile>) supplies the field checks and the online session.
import asyncio
import time
from micropython import const

from onboard import log, wifi
from onboard.store import Store

WAIT_CONFIG = "WAIT_CONFIG"
CONFIGURING = "CONFIGURING"
CONNECTING_NET = "CONNECTING_NET"
CONNECTING_CLOUD = "CONNECTING_CLOUD"
RUNNING = "RUNNING"
RESET_CONFIG = "RESET_CONFIG"
ERROR = "ERROR"

ERR_CONFIG = const(700)
ERR_NETWORK = const(701)
ERR_CLOUD = const(702)
ERR_TOKEN = const(703)
ERR_INTERNAL = const(704)
_TAG = "runtime"
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


class Runtime:
    def __init__(self, config, board, store=None, profile=None):
        self.config = config
        self.board = board
        self.store = store or Store(board.store_path())
        if profile is None:
            profile = __import__("onboard.clouds." + config.get("profile", "blynk"), None, None,
                                 ["x"])
        self.profile = profile
        self.state = None
        self.last_error = 0
        self.portal_url = None
        self.arrived = asyncio.Event()
        self.fresh = False  # credentials from setup that have not worked yet
        self.setup_requested = False
        self.reconnect = False  # the session asks to be started again at once
        self.mqtt = None  # the online client, for publish()
        self.on_online = None  # what the session does after each MQTT connect
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

    def deliver(self, topic, msg):
        """A cloud-to-device message for the application (an event when none listens)."""
        if self.on_message:
            self.on_message(topic, msg)
        else:
            self.note(message=topic.decode())

    def publish(self, topic, msg, retain=False, qos=0):
        """Publish while online; False when offline (nothing is queued)."""
        if not self.mqtt:
            return False
        self.mqtt.publish(topic, msg, retain, qos)
        return True

    def set_error(self, code):
        self.last_error = code
        if self.store.get("state").get("last_error", 0) != code:
            self.store.put("state", last_error=code)  # one write per change

    # -- credentials arriving ------------------------------------------------------

    def apply(self, fields):
        """Credentials arrived (portal, Improv, ...): check all, then store all.
        ValueError("<field>: <why>") stores nothing."""
        ssid = fields.get("ssid", "")
        password = fields.get("pass", fields.get("password", ""))
        try:
            wifi.check_credentials(ssid, password)
        except ValueError as e:
            msg = str(e)
            raise ValueError("pass" + msg[8:] if msg.startswith("password") else msg) from None
        cloud = {}
        names = [f[0] for f in getattr(self.profile, "FIELDS", ())]
        # the cloud fields may be left out when the device already has a token
        if hasattr(self.profile, "check") and (
                any(fields.get(n) for n in names) or not self.store.get("cloud").get("token")):
            cloud = self.profile.check(fields, self.config, self.store.get("cloud"))
        wifi.remember(self.store, ssid, password)
        if cloud:
            self.store.put("cloud", **cloud)
        self.fresh = True
        self.arrived.set()

    def wifi_arrived(self, ssid, password):
        """Wi-Fi credentials that already joined (Improv): store them, go online."""
        wifi.remember(self.store, ssid, password)
        self.arrived.set()

    def reset(self):
        self.store.clear("wifi", "enrol", "cloud")
        self.set_error(0)

    def board_info(self):
        ap = self.ap_name()
        return {"board": self.config.get("name", "onboard"),
                "tmpl_id": self.config.get("tmpl_id", ""),
                "fw_type": self.config.get("fw_type", self.config.get("name", "onboard")),
                "fw_ver": self.config.get("fw_ver", "0.0.0"),
                "ssid": ap, "bssid": wifi.mac_text(self.board.ap_mac()),
                "mac": wifi.mac_text(self.mac),
                "last_error": self.last_error, "wifi_scan": True, "static_ip": False,
                "vendor": self.config.get("vendor", ""), "uid": self.uid()}

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

    # -- setup mode ----------------------------------------------------------------

    async def setup_mode(self):
        from onboard.dns import CaptiveDNS
        from onboard.portal import Portal

        opts = self.config.get("portal", {})
        self.board.start_ap(self.ap_name(), opts.get("ap_password") or None)
        portal = Portal(self.board_info, self.scan, self.apply, self.reset,
                        reboot=self.board.reboot, host=self.board.AP_ADDRESS,
                        port=self.board.PORTAL_PORT, pop=opts.get("pop") or None,
                        fields=getattr(self.profile, "FIELDS", ()),
                        title=self.ap_name())
        await portal.start()
        dns = CaptiveDNS(self.board.AP_ADDRESS, self.board.DNS_PORT)
        tasks = [asyncio.create_task(dns.run())]
        improv = self.board.uart()
        if improv:
            from onboard.improv import Improv

            tasks.append(asyncio.create_task(Improv(self, improv).run()))
        self.portal_url = portal.root
        self.arrived.clear()
        self.set_state(WAIT_CONFIG)
        idle_ms = int(opts.get("idle_timeout_s", 600)) * 1000
        try:
            while not self.arrived.is_set():
                try:
                    await asyncio.wait_for_ms(self.arrived.wait(), 500)
                except asyncio.TimeoutError:
                    pass
                if portal.idle_ms() >= idle_ms and wifi.saved(self.store):
                    log.info(_TAG, "setup idle: back to the stored credentials")
                    break
        finally:
            portal.stop()
            for t in tasks:
                t.cancel()
            self.board.stop_ap()
            self.portal_url = None
        if self.arrived.is_set():
            self.set_state(CONFIGURING)
            self.station().disconnect()  # join again, with what just arrived

    # -- online ----------------------------------------------------------------------

    async def connect_net(self):
        sta = self.station()
        if sta.isconnected():
            return True
        self.set_state(CONNECTING_NET)
        code, ssid = await wifi.join_saved(self.store, self.station(),
                                           int(self.config.get("wifi_timeout_s", 15)) * 1000)
        if code:
            self.set_error(code)
            return False
        log.info(_TAG, "joined %s", ssid)
        self.fresh = False
        return True

    async def run(self):
        self.store.load()
        self.last_error = self.store.get("state").get("last_error", 0)
        asyncio.create_task(self.watch_button())
        asyncio.create_task(self.blink())
        attempt = 0
        while True:
            if self.setup_requested or not wifi.saved(self.store):
                self.setup_requested = False
                await self.setup_mode()
                attempt = 0
            if not await self.connect_net():
                if self.fresh:
                    self.setup_requested = True  # new credentials failed: show the user why
                else:
                    delay = backoff_s(attempt, *self.backoff)
                    attempt += 1
                    self.note(retry_in=delay, attempt=attempt)
                    await asyncio.sleep(delay)
                continue
            self.set_state(CONNECTING_CLOUD)
            retry_after = await self.online()
            if retry_after is None:
                attempt = 0
                continue
            delay = max(backoff_s(attempt, *self.backoff), retry_after)
            attempt += 1
            log.info(_TAG, "retry in %d ms (attempt %d)", int(delay * 1000), attempt)
            self.note(retry_in=delay, attempt=attempt)
            await asyncio.sleep(delay)

    async def online(self):
        """One cloud session, run as a task so that a setup request (button,
        reconfigure) or a lost network ends it at once. None when it ended by
        itself (reconfigure, redirect, renewal) or the credentials were
        refused; else the Retry-After seconds (0: none) before the next try."""
        from onboard.clouds import Rejected, Transient
        from onboard.errors import NetError, TLSError

        task = asyncio.create_task(self.profile.session(self))
        while not task.done():
            lost = not self.station().isconnected()
            if self.setup_requested or lost:
                task.cancel()
                try:
                    await task
                except BaseException:  # noqa: BLE001  CancelledError, or what it ended with
                    pass
                if lost:
                    log.warn(_TAG, "network lost")
                    self.set_error(ERR_NETWORK)
                    return 0
                return None
            await asyncio.sleep_ms(100)
        try:
            await task
            return None
        except Rejected as e:
            log.warn(_TAG, "credentials refused at %s", e.args[0])
            self.set_error(e.args[1] if len(e.args) > 1 else ERR_TOKEN)
            self.setup_requested = True
            return None
        except Transient as e:
            self.set_error(ERR_CLOUD)
            return e.args[1]
        except OSError as e:
            log.warn(_TAG, "cloud: %s", str(e) if isinstance(e, NetError) else "network error")
            self.set_error(711 if isinstance(e, TLSError) else ERR_CLOUD)
            return 0

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
                self.setup_requested = True
                while self.board.button():
                    await asyncio.sleep_ms(50)
            elif not down:
                held = time.ticks_diff(now, pressed_at)
                pressed_at = None
                if 1000 <= held <= 3000:
                    log.info(_TAG, "button: setup mode")
                    self.setup_requested = True

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
