# The device state machine on one asyncio loop (Blynk.Edgent's state names).
# The runtime owns the states, last_error, the store writes that follow from
# them and the cloud connection; a cloud profile (onboard.clouds.<profile>)
# only checks fields and hands back outcomes. What only one state needs is in
# a module loaded for it and let go of after: booting (onboard.boot), setup
# mode (onboard.setupmode, where credentials arrive through one door,
# arrive()) and the cloud session (onboard.session).
import asyncio
import time
from micropython import const

from onboard import log

# onboard.codes' values, folded in at compile time (the module is not loaded)
_WAIT_CONFIG = const("WAIT_CONFIG")
_CONFIGURING = const("CONFIGURING")
_CONNECTING_NET = const("CONNECTING_NET")
_CONNECTING_CLOUD = const("CONNECTING_CLOUD")
_RUNNING = const("RUNNING")
_RESET_CONFIG = const("RESET_CONFIG")
_ERROR = const("ERROR")
_ERR_INTERNAL = const(704)
_TAG = const("runtime")
_TYPES = const(0)  # pyright's: MicroPython folds `if _TYPES:` away
if _TYPES:
    from typing import Any
_OUTBOX = const(8)  # application messages queued while online, at most
_GC_EVERY = const(1024)  # bytes allocated between two collections (main)
# LED (on ms, off ms) per state: fast blink in setup, slow while connecting, on when online
LED = {_WAIT_CONFIG: (100, 100), _CONFIGURING: (100, 100), _CONNECTING_NET: (500, 500),
       _CONNECTING_CLOUD: (500, 500), _RUNNING: (1000, 0), _RESET_CONFIG: (50, 50),
       _ERROR: (50, 950)}


def forget(*names):
    """Let go of onboard modules that are no longer needed (their code is in
    RAM when loaded from a filesystem); imported again when needed."""
    import gc

    from onboard.store import let_go

    for name in names:
        let_go(name)
    # asyncio's poller keeps a link to the last stream it stopped watching: a
    # map slot whose key is removed keeps its value (MicroPython's dicts). That
    # kept a closed TLS socket, and with it the TLS context, in RAM through
    # setup mode. With no stream watched, a new poller is the same without it.
    import select
    from asyncio import core  # pyright: ignore  (MicroPython's asyncio)

    if not core._io_queue.map:
        core._io_queue.poller = select.poll()
    gc.collect()


def loaded():
    import sys

    # (loops, not comprehensions: each of those is one more function in RAM)
    names = []
    for n in sys.modules:
        if n.startswith("onboard."):
            names.append(n)
    return names


def new_since(before):
    """The onboard modules (short names) loaded since loaded() gave before,
    but onboard.trial: settings on trial outlive the state that loaded it
    (their end lets go of it)."""
    names = []
    for n in loaded():
        if n not in before and n != "onboard.trial":
            names.append(n[8:])
    return names


class Runtime:
    # The fields, set once at boot by onboard.boot.make() (annotations cost
    # MicroPython nothing: it compiles them away)
    config: "Any"  # the config file's JSON
    board: "Any"  # the board module (boards/)
    store: "Any"  # the store; while new settings are on trial, a Trial over it
    real: "Any"  # the store itself
    profile: "Any"  # the cloud profile's module (onboard.clouds.<profile>)
    state: "Any"  # the state's name (onboard.codes), None before the first
    last_error: int
    portal_url: "Any"  # setup mode's portal, None outside it
    arrived: "Any"  # an asyncio.Event: credentials arrived in setup mode
    fresh: bool  # credentials from setup that have not worked yet
    setup_requested: bool
    session: "Any"  # the running cloud session task, or None
    ctx: "Any"  # the cloud's TLS context (make_tls, else session_tls), or None
    outbox: list  # (topic, msg, retain, qos) for the online loop to send
    online: bool
    on_message: "Any"  # the application's hook: f(topic, msg), or None
    mac: bytes
    sta: "Any"  # the station interface, once made active
    helpers: tuple  # the button's and the LED's tasks
    pressed_at: "Any"  # the button: ticks_ms when pressed, False: held after a reset
    backoff: tuple  # (base, cap) seconds between two tries; stable: online that long resets it

    # -- reporting -------------------------------------------------------------

    def set_state(self, state):
        if state == self.state:
            return
        self.state = state
        log.info(_TAG, "state %s (last_error %d)", state, self.last_error)
        self.note()

    def note(self, **fields):
        """A device event: a state change, or one that is not (a renewal, a retry)."""
        event = {"state": self.state, "portal": self.portal_url, "last_error": self.last_error}
        event.update(fields)
        if self.config.get("report_heap"):
            import gc

            gc.collect()
            event["heap"] = gc.mem_alloc()  # live bytes, for the benchmarks
            # and what holds them, by short name (no comprehension: a function)
            event["loaded"] = " ".join(loaded()).replace("onboard.", "").split()
        self.board.emit(event)

    def set_error(self, code):
        self.last_error = code
        if self.store.get("state").get("last_error", 0) != code:
            self.store.put("state", last_error=code)  # one write per change

    def publish(self, topic, msg, retain=False, qos=0):
        """Queue a message for the cloud; False when offline or the queue is
        full (nothing is kept for later). ValueError for a QoS that MQTT
        does not carry here (0 and 1 only), or a message longer than the
        profile's MAX_MESSAGE, at the call: not in the session."""
        if qos not in (0, 1):
            raise ValueError("qos: 0 or 1")
        most = getattr(self.profile, "MAX_MESSAGE", 0)
        if most:
            n = 2 + 2 * qos  # the topic's length and the packet id
            for s in (topic, msg):
                n += len(s.encode() if isinstance(s, str) else s)
            if n > most:
                raise ValueError("topic and msg: over %d bytes" % most)
        if not self.online or len(self.outbox) >= _OUTBOX:
            return False
        self.outbox.append((topic, msg, retain, qos))
        return True

    def trial(self):
        return self.store is not self.real

    def reset(self):
        cloud = self.real.get("cloud")
        self.store = self.real
        forget("trial")
        # one write (the state's settings on trial and last_error too): a power
        # cut leaves all or nothing, never settings on trial for the next boot
        self.store.clear("wifi", "enrol", "cloud", "state")
        bye = getattr(self.profile, "bye", None)
        if bye:  # the cloud is told once the flash has let go (plgd: sign out, deregister)
            asyncio.create_task(bye(self, cloud))
        self.set_error(0)

    def request_setup(self):
        """Open setup mode (button, cloud): the cloud session ends at once."""
        self.setup_requested = True
        if self.session:
            self.session.cancel()

    def uid(self):
        from binascii import hexlify

        return hexlify(self.mac).decode()  # the MAC, as wifi.mac_text(mac, "")

    def station(self):
        # made active once; the online loop asks it every 100 ms
        if self.sta is None:
            import network

            self.sta = network.WLAN(network.STA_IF)
            self.sta.active(True)
        return self.sta

    # -- online ----------------------------------------------------------------------

    def make_tls(self):
        """The cloud sessions' one TLS context, made before going online when
        the heap has room (at boot, or where setup mode's code just was) and
        kept for every session: mbedTLS wants one large block, which a heap
        fragmented by a session or by setup mode may no longer have. A CA
        that does not load is left for the session to report (ERR_CLOUD).
        (onboard.cloudtls makes it: code loaded only while it does.)"""
        cfg = self.config
        if self.ctx is None and cfg.get("ca") and cfg.get("tls", True) is not False:
            from onboard.cloudtls import make_tls

            make_tls(self)  # (which lets go of its code)

    def try_pending(self):
        """Settings waiting in the store (state.pending: from setup mode, or
        left by a power cut during a trial) are tried, the store seen
        through a Trial."""
        if self.trial() or not self.real.get("state").get("pending"):
            return
        from onboard.trial import Trial

        self.store = Trial(self.store)

    async def run(self):
        self.store.load()
        self.last_error = self.store.get("state").get("last_error", 0)
        self.try_pending()
        attempt = 0
        while True:
            await self.fresh_helpers()
            before = loaded()
            if self.setup_requested or not (self.store.get("wifi").get("networks")
                                            or self.trial()):  # (wifi.saved)
                self.setup_requested = False
                self.ctx = None  # (not needed in setup mode: made again after it)
                # setup mode in a task of its own (see fresh_helpers); this
                # coroutine's locals last as long as the device runs, so
                # none keeps setup mode's code, nor the session's below
                from onboard.setupmode import run as state
                state = asyncio.create_task(state(self))
                await state
                state = None
                await self.fresh_helpers()  # (and the cancelled setup tasks end)
                forget(*new_since(before))  # setup mode's code leaves RAM (portal, DNS, Improv)
                self.try_pending()  # (loaded now, not among setup mode's code)
                attempt = 0
            self.make_tls()
            from onboard.session import online as state

            attempt = await state(self, attempt)
            state = None
            forget(*new_since(before))  # the session's code (MQTT, TLS) leaves RAM

    def now_online(self):
        if self.trial():
            log.info(_TAG, "new settings worked: they replace the working ones")
            self.store = self.real
            from onboard.trial import switch

            switch(self.store)
            del switch  # (a local holds the module until this returns: the state's report, a write)
            forget("trial")
        self.set_error(0)
        if self.state == _RUNNING:
            self.note(online=True)  # back online without leaving RUNNING (a renewal)
        self.set_state(_RUNNING)

    # -- the board -------------------------------------------------------------------

    async def fresh_helpers(self):
        """Start the button's and the LED's tasks afresh. MicroPython's task
        queue leaves in a task a link to the last task it held (a pairing
        heap's child_last), never cleared: in a long-lived task such as these
        it would keep a finished task of the state that ended, and with it
        that state's code and objects, in RAM. States run in tasks of their
        own (the main task waits apart), and new helpers hold no such link."""
        for t in self.helpers:
            t.cancel()
        await asyncio.sleep_ms(0)  # the old ones end
        self.helpers = (asyncio.create_task(self.watch_button()),
                        asyncio.create_task(self.blink()))

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
        keeping the stored credentials. (The press is kept in self, across
        fresh_helpers.)"""
        while True:
            await asyncio.sleep_ms(50)
            down = self.board.button()
            now = time.ticks_ms()
            pressed_at = self.pressed_at
            if pressed_at is None:
                if down:
                    self.pressed_at = now
            elif pressed_at is False:  # held on after a reset: wait for its release
                if not down:
                    self.pressed_at = None
            elif down and time.ticks_diff(now, pressed_at) >= 10000:
                self.pressed_at = False
                self.set_state(_RESET_CONFIG)
                try:
                    self.reset()
                except OSError as e:  # the flash refused: the settings stay, setup opens
                    log.error("reset", "%s", e)  # (no new text: none kept in RAM)
                self.request_setup()
            elif not down:
                self.pressed_at = None
                if 1000 <= time.ticks_diff(now, pressed_at) <= 3000:
                    log.info(_TAG, "button: setup mode")
                    self.request_setup()


def main(board, config_path=None, start=None):
    """Load the config and run the device forever. A config it cannot use
    shows ERROR with 700 and waits (rebooting would not help); anything
    unexpected shows ERROR with 704 and reboots after 10 s. start: the
    application's f(rt), called once with the runtime before it runs: it
    sets rt.on_message and starts its own tasks (asyncio.create_task),
    which publish with rt.publish."""
    import gc

    # collect after every 1 KB allocated, not only when an allocation fails:
    # garbage is freed while it is small and near, so the long-lived objects
    # of each state do not end up scattered over a fragmented heap (the
    # smallest heap of the 32-bit Blynk life, 4 runs each: 54,016-55,296 B
    # every 2 KB, 53,248-54,528 B every 1 KB, 56,576 B every 4 KB)
    gc.threshold(_GC_EVERY)
    from onboard import boot

    rt = boot.runtime(board, config_path)
    del boot
    forget("boot")  # its code leaves RAM
    try:
        if start:
            start(rt)
        asyncio.run(rt.run())
    except Exception as e:  # noqa: BLE001  the device must come back by itself
        log.error(_TAG, "internal error: %s", type(e).__name__)
        rt.set_error(_ERR_INTERNAL)
        rt.set_state(_ERROR)
        time.sleep(10)
        board.reboot()
