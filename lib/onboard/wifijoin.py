# Joining a network: one (join) or the saved ones in turn (join_saved), and
# the last_error code a failed join ends with (reason); the device's join for
# CONNECTING_NET (for_device: the settings on trial, else the saved ones).
# Imported by the cloud session for CONNECTING_NET and let go of after it;
# Improv (and any user) reaches join as wifi.join, through onboard.wifi's
# module __getattr__.
import asyncio
import time
from micropython import const

from onboard.wifi import leave, remember, saved

# onboard.codes' values, folded in at compile time (the module is not loaded)
_ERR_CONFIG = const(700)
_ERR_NETWORK = const(701)
_ERR_NOT_FOUND = const(720)
_ERR_WRONG_PASSWORD = const(722)
_ERR_NO_IP = const(723)
_TAG = const("runtime")
_GOT_IP = const(1010)
_CONNECTING = const(1001)
_RETRIES = const(1)  # two tries: a wrong key shows well within wifi_timeout_s


def reason(status):
    """The last_error code for an ESP32 station status that ended a join."""
    if status in (201, 210, 211, 212):
        return _ERR_NOT_FOUND
    # ESP-IDF 5 reports a wrong WPA2 key as the 4-way handshake's timeout (15);
    # some access points end the handshake (204), WPA3 refuses it (202)
    if status in (15, 202, 204):
        return _ERR_WRONG_PASSWORD
    # the timeout, no reason given: associated, but no address came (an ESP32
    # station left by disconnect() reads idle until an address comes)
    if status in (_CONNECTING, 1000):
        return _ERR_NO_IP
    return _ERR_NETWORK


async def join(sta, ssid, password, timeout_ms=15000, ip=None, stop=None):
    """Join one network: 0 when an address came, else its last_error code.
    ip: [ip, mask, gw, dns, dns2] for a static address, None for DHCP.
    stop: the runtime, or None; once its setup_requested is true the join
    ends there, as when timeout_ms has passed."""
    sta.active(True)
    # MicroPython's ESP32 station retries a failed join for ever by default, and
    # status() says "connecting" all along for most reasons (a wrong key among
    # them): with one retry (two tries), the reason shows once it is spent
    sta.config(reconnects=_RETRIES)
    await leave(sta)
    # the radio takes ip, mask, gw and one DNS server; dns2 is kept, not applied
    if ip:
        sta.ifconfig(tuple(ip[:4]))
    else:
        try:
            sta.ifconfig("dhcp")  # back to DHCP after a network with a static address
        except (OSError, ValueError, RuntimeError):
            # DHCP on already (an ESP32 raises RuntimeError while its client
            # still runs for the network just left), or a port without the switch
            pass
    # status() keeps the reason the last join ended with until an address
    # comes or a try ends anew (connect() does not clear it): until the
    # status moves, that old reason is no news of this join
    old = sta.status()
    sta.connect(ssid, password)
    start = time.ticks_ms()
    while True:
        status = sta.status()
        if status == _GOT_IP:
            return 0
        if stop and stop.setup_requested:
            break
        if status != old:
            old = None
            # idle (just after connect) or associating: wait, up to timeout_ms
            if status not in (_CONNECTING, 1000):
                break
        if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
            break
        await asyncio.sleep_ms(100)
    sta.disconnect()
    return reason(status)


async def join_saved(store, sta, timeout_ms=15000, stop=None):
    """Try the saved networks, most recently good first: (0, ssid) once one
    joins (it moves to the front of the list), else (last_error, None).
    stop: as join's; once it has ended a join, no other network is tried."""
    error = _ERR_CONFIG  # nothing saved
    for net in saved(store):
        code = await join(sta, net["ssid"], net["password"], timeout_ms, net.get("ip"), stop)
        if not code:
            remember(store, net["ssid"], net["password"], net.get("ip"))
            return 0, net["ssid"]
        error = code
        if stop and stop.setup_requested:
            break  # (the others are not tried: the radio is left idle)
    return error, None


async def for_device(rt, sta):
    """CONNECTING_NET's join: the settings on trial, else the saved networks.
    True once joined; else False, last_error set (or the trial ended). A
    press of the button (setup requested) ends the join at once, as
    Blynk.Edgent leaves its join for setup mode, and sets no last_error."""
    from onboard import log

    timeout = int(rt.config.get("wifi_timeout_s", 15)) * 1000
    if rt.trial():
        p = rt.real.get("state")["pending"]
        ssid = p["ssid"]  # pyright: ignore  (a dict: the store's JSON)
        code = await join(sta, ssid, p["password"], timeout,  # pyright: ignore
                          p.get("ip"), rt)  # pyright: ignore
        if code:
            from onboard.trial import end

            end(rt, rt.last_error if rt.setup_requested else code)
            return False
    else:
        code, ssid = await join_saved(rt.store, sta, timeout, rt)
        if code:
            if not rt.setup_requested:
                rt.set_error(code)
            return False
    log.info(_TAG, "joined %s at %s", ssid, sta.ifconfig()[0])
    rt.fresh = False
    return True
