# Booting: the config read and the runtime made with its fields. Loaded by
# onboard.runtime.main() once and let go of before the device runs, as
# nothing here is needed again (a function costs RAM while its module is
# loaded from a filesystem).
import asyncio
import time
from micropython import const

from onboard import clock, log
from onboard.codes import ERR_CONFIG, ERROR
from onboard.runtime import Runtime
from onboard.store import Store

_TAG = const("runtime")


def runtime(board, config_path=None):
    """The device's Runtime from its config file. A config it cannot use
    shows ERROR with 700 and waits: rebooting would not help."""
    import json

    try:
        with open(config_path or board.config_path()) as f:
            config = json.load(f)
        return make(config, board)
    except (OSError, ValueError, ImportError, AttributeError) as e:
        log.error(_TAG, "config unusable: %s", type(e).__name__)
        board.emit({"state": ERROR, "portal": None, "last_error": ERR_CONFIG})
        while True:
            board.led(True)
            time.sleep_ms(50)
            board.led(False)
            time.sleep_ms(950)


def make(config, board, store=None, profile=None):
    """A Runtime with every field it keeps (see onboard.runtime)."""
    rt = Runtime()
    rt.config = config
    rt.board = board
    # the store; while new settings are on trial rt.store is a Trial over it
    rt.real = rt.store = store or Store(board.store_path())
    if profile is None:
        profile = __import__("onboard.clouds." + config.get("profile", "blynk"), None, None, ["x"])
    rt.profile = profile
    clock.attach(board)  # the board's clock never reads earlier than the build
    rt.state = None
    rt.last_error = 0
    rt.portal_url = None
    rt.arrived = asyncio.Event()
    rt.joined = False  # what arrived has already joined (Improv)
    rt.fresh = False  # credentials from setup that have not worked yet
    rt.setup_requested = False
    rt.session = None  # the running cloud session task
    rt.ctx = None  # the cloud's TLS context (make_tls, else session_tls)
    rt.outbox = []  # (topic, msg, retain, qos) for the online loop to send
    rt.online = False
    rt.on_message = None  # the application's hook: f(topic, msg)
    rt.mac = board.unique_id()
    rt.sta = None
    rt.helpers = ()  # the button's and the LED's tasks
    rt.pressed_at = None  # the button: ticks_ms when pressed, False: held after a reset
    backoff = config.get("backoff", {})
    rt.backoff = (backoff.get("base", 2), backoff.get("cap", 64))
    return rt
