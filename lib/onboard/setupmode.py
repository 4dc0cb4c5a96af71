# Setup mode, loaded only while the device is in it: the access point, the
# portal, the captive DNS and Improv, and the one door credentials arrive
# through, arrive(). The runtime lets go of this module (and of the portal,
# DNS and Improv it loads) once setup mode ends.
import asyncio
import time
from micropython import const

from onboard import log, wifi

# onboard.codes' values, folded in at compile time (the module is not loaded)
_WAIT_CONFIG = const("WAIT_CONFIG")
_CONFIGURING = const("CONFIGURING")
_TAG = const("runtime")


def arrive(rt, fields, joined=False):
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
    store = rt.real
    cloud = {}
    profile = rt.profile
    given = False  # a cloud field given (a loop: a comprehension is a function in RAM)
    for f in getattr(profile, "FIELDS", ()):
        given = given or bool(fields.get(f[0]))
    # the cloud fields may be left out when the device already has a token
    check = getattr(profile, "check", None)  # (blynk loads it for this call: once)
    if check and (given or not (joined or store.get("cloud").get("token"))):
        cloud = check(fields, rt.config, store.get("cloud"))
    check = None  # (the store's writes below need not hold its code)
    # settings that arrive end a trial left unfinished (a press during it):
    # saved, or on trial afresh (Runtime.try_pending), their own tries counted
    rt.store = store
    if joined or fields.get("save", "0") not in ("", "0") or not wifi.saved(store):
        # one write: a power cut leaves the old settings or all the new ones
        wifi.remember(store, ssid, password, ip, {"state": {"pending": None}, "cloud": cloud})
    else:  # on trial once setup mode has ended (Runtime.try_pending)
        store.put("state", pending={"ssid": ssid, "password": password, "ip": ip,
                                    "cloud": cloud})
    rt.fresh = not joined
    rt.arrived.set()


def board_info(rt, ap):
    cfg = rt.config
    mac = wifi.mac_text(rt.mac)
    tmpl = cfg.get("tmpl_id", "")
    return {"board": cfg.get("name", "onboard"), "tmpl_id": tmpl,
            "fw_type": cfg.get("fw_type") or tmpl,
            "fw_ver": cfg.get("fw_ver", "0.0.0"),
            "ssid": ap, "bssid": wifi.mac_text(rt.board.ap_mac()), "mac": mac,
            "last_error": rt.last_error, "wifi_scan": True, "static_ip": True,
            "vendor": cfg.get("vendor", ""), "uid": rt.uid(),
            # the newer Edgent's schema, beside the classic one
            "name": cfg.get("name", "onboard"),
            "ifs": [{"name": "wifi", "mac": mac, "scan": True, "5ghz": False,
                     "static_ip": True}]}


async def improv(rt, uart, ap, scan, url):
    """Improv on the board's serial line, its code loaded once a byte
    arrives there: setup mode that nobody speaks Improv to (a phone on the
    portal) does not hold it. The line is the REPL's too: its Ctrl-C byte
    (0x03), which Improv's packets carry (an RPC's type), is let through to
    Improv meanwhile, and Improv stops the program on one that comes outside
    a packet, as Ctrl-C would (mpremote, a terminal)."""
    from micropython import kbd_intr

    kbd_intr(-1)
    try:
        first = await asyncio.StreamReader(uart[0] if isinstance(uart, tuple) else uart).read(1)
        if first:
            from onboard.improv import serve

            await serve(rt, uart, ap, scan, url, first)
    except OSError as e:  # the line went away: setup mode carries on without it
        log.warn("improv", "stopped: %s", e)
    finally:
        kbd_intr(3)


async def run(rt):
    """Setup mode until credentials arrive, or it ends idle or by the button
    with stored credentials to go back to."""
    from onboard.dns import CaptiveDNS
    from onboard.portal import Portal

    cfg = rt.config
    board = rt.board
    opts = cfg.get("portal", {})
    # the access point's name: "<vendor> <name>-XXXX", at most 32 bytes, XXXX
    # from the MAC, never a UTF-8 character cut in half
    suffix = "-%02X%02X" % (rt.mac[-2], rt.mac[-1])
    ap = ("%s %s" % (cfg.get("vendor", "onboard"), cfg.get("name", "device"))).strip().encode()[
        : 32 - len(suffix)]
    while True:
        try:
            ap = ap.decode() + suffix
            break
        except UnicodeError:
            ap = ap[:-1]

    def scan():
        try:
            return wifi.scan(rt.station())
        except OSError:
            return []

    # leave the network, as Blynk.Edgent turns the radio off before its access
    # point: a station that had joined retries by itself once its network
    # goes (or has just gone: a press while the firmware rejoins), and while
    # it retries ESP-IDF refuses to scan (v1.25 lists no network)
    await wifi.leave(rt.station())
    board.start_ap(ap, opts.get("ap_password") or None)
    portal = Portal(lambda: board_info(rt, ap), scan, lambda fields: arrive(rt, fields),
                    rt.reset, reboot=board.reboot, host=board.AP_ADDRESS,
                    port=board.PORTAL_PORT, pop=opts.get("pop") or None,
                    fields=getattr(rt.profile, "FIELDS", ()),
                    title=ap, captive=opts.get("captive", True))
    await portal.start()
    rt.portal_url = portal.root
    dns = CaptiveDNS(board.AP_ADDRESS, board.DNS_PORT, opts.get("captive", True))
    tasks = [asyncio.create_task(dns.run())]
    uart = board.uart()
    if uart:
        tasks.append(asyncio.create_task(improv(rt, uart, ap, scan, portal.root)))
    rt.arrived.clear()
    await asyncio.sleep_ms(0)  # the DNS (and Improv) start before WAIT_CONFIG says so
    rt.set_state(_WAIT_CONFIG)
    idle_ms = int(opts.get("idle_timeout_s", 600)) * 1000
    try:
        while not rt.arrived.is_set():
            try:
                await asyncio.wait_for_ms(rt.arrived.wait(), 500)
            except asyncio.TimeoutError:
                pass
            # idle, or a short press of the button: back to the stored
            # credentials. With none (the 10 s reset came here), setup mode
            # goes on, WAIT_CONFIG again, as Blynk.Edgent's reset ends
            if portal.idle_ms() >= idle_ms or rt.setup_requested:
                rt.setup_requested = False
                if wifi.saved(rt.store) or rt.trial():
                    log.info(_TAG, "setup ends: back to the stored credentials")
                    break
                rt.set_state(_WAIT_CONFIG)
    finally:
        # let the reply to what ended setup mode go out before the AP goes down
        t0 = time.ticks_ms()
        while portal.active and time.ticks_diff(time.ticks_ms(), t0) < 3000:
            await asyncio.sleep_ms(20)
        portal.stop()
        for t in tasks:
            t.cancel()
        board.stop_ap()
        rt.portal_url = None
    if rt.arrived.is_set():
        rt.set_state(_CONFIGURING)  # (CONNECTING_NET joins what arrived: rt.fresh)
