# A stand-in for the ESP32 `network` module on the Unix port, driven by a
# radio file (JSON, path in $ONBOARD_RADIO):
#   {"networks": [{"ssid", "bssid", "rssi", "sec", "ch", "password",
#                  "behaviour": "ok" | "no_ip" | "slow" | "weak"}], "deaf": N}
# ("deaf", a number other than 0: from then on the station hears nothing, as
# an ESP32 radio that no longer takes in frames: a joined station loses its
# network, scans find none and joins fail, until the radio is turned off
# (active(False)); a new number makes it deaf again)
# ("weak": the first try of a join ends as a wrong key's does, by the 4-way
# handshake's timeout; the radio's retry, if it has one left, associates)
# "sec" is one of Edgent's names (_SEC); any other is refused, loudly.
# The file is re-read every 250 ms, so a test can take a network away under
# a running device. Association is asynchronous, as on the ESP32:
# connect() returns at once and status() moves on with time. status() answers
# as MicroPython v1.25's ESP32 port does (ports/esp32/network_wlan.c): the
# reason the last try ended with stays until an address comes (connect()
# keeps it); a wrong WPA2 key ends a try as ESP-IDF 5 says it, the 4-way
# handshake's timeout (15), which shows only once config(reconnects=N)'s
# retries are spent (by default the station retries, "connecting", for ever);
# a disconnect of a joined station (disconnect(), or a connect() while
# joined) is handled _EVENT_MS after the call.
# On an ESP32 this module is firmware, not heap: it is kept small (few
# functions, names and objects), since the Unix board's heap figures count it.
import json
import os
import time
from micropython import const

STA_IF = const(0)
AP_IF = const(1)
STAT_IDLE = const(1000)
STAT_CONNECTING = const(1001)
STAT_GOT_IP = const(1010)
STAT_BEACON_TIMEOUT = const(200)
STAT_NO_AP_FOUND = const(201)
STAT_WRONG_PASSWORD = const(202)
STAT_ASSOC_FAIL = const(203)
STAT_HANDSHAKE_TIMEOUT = const(204)
_ASSOC_LEAVE = const(8)  # the reason of a disconnect() (status: idle)
_HANDSHAKE_4WAY = const(15)  # ESP-IDF 5's reason for a wrong WPA2 key
AUTH_OPEN = const(0)
AUTH_WEP = const(1)
AUTH_WPA_PSK = const(2)
AUTH_WPA2_PSK = const(3)
AUTH_WPA_WPA2_PSK = const(4)
AUTH_WPA3_PSK = const(6)

# Edgent's security names, in the order of the ESP32's authmode numbers
_SEC = const("OPEN WEP WPA WPA2 WPA+WPA2 WPA2-EAP WPA3 WPA2+WPA3 WAPI")
_ASSOCIATE_MS = const(150)  # "ok": association and DHCP
_SLOW_MS = const(3000)  # "slow"
_WRONG_MS = const(400)  # a try with a wrong password ends with the 4-way handshake
_REREAD_MS = const(250)
_EVENT_MS = const(20)  # until ESP-IDF's event loop handles a disconnect
_ANY = const(("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1"))
_radio = [None, [], 0]  # when the radio file was read (ticks), the networks in it, deaf
_wlan = {}  # interface -> its one WLAN, as on the ESP32


def _networks(ssid=None, cured=None):
    """The networks in the air now, from the radio file; with ssid: the
    strongest of that name, None when there is none. cured: the deafness a
    station's radio was last turned off in; it hears nothing while the
    file's is another."""
    path = os.getenv("ONBOARD_RADIO")
    now = time.ticks_ms()
    if path and (_radio[0] is None or time.ticks_diff(now, _radio[0]) >= _REREAD_MS):
        deaf = 0
        try:
            with open(path) as f:
                radio = json.load(f)
            nets, deaf = radio.get("networks", []), radio.get("deaf", 0)
        except (OSError, ValueError, AttributeError):
            nets = []  # no file, or one being rewritten: no networks this time
        nets = nets if isinstance(nets, list) else []
        names = _SEC.split()
        for n in nets:
            if n.get("sec", "OPEN") not in names:
                raise ValueError("radio file %s: network %r: sec %r is not one of %s"
                                 % (path, n.get("ssid"), n.get("sec"), ", ".join(names)))
        _radio[:] = [now, nets, deaf]
    if cured is not None and _radio[2] not in (0, cured):
        return None if ssid else []
    if ssid is None:
        return _radio[1]
    best = None
    for n in _radio[1]:
        if n.get("ssid") == ssid and (best is None or n.get("rssi", -100) > best.get("rssi", -100)):
            best = n
    return best


def _mac(text):
    return bytes.fromhex(text.replace(":", ""))


class WLAN:
    def __new__(cls, interface=STA_IF):
        # like the ESP32: one object per interface
        self = _wlan.get(interface)
        if self is None:
            self = _wlan[interface] = object.__new__(cls)
            # [active, ssid asked for (None: no join asked), key, since (ticks: this
            #  try's start), the last try's reason (0: none), static (ip, mask, gw,
            #  dns) or None, when a joined station was left (ticks) or None,
            #  joined, tries that failed, the deafness it was last turned off in]
            self.s = [False, None, None, 0, 0, None, None, False, 0, 0]
            self.interface = interface
            mac = _mac(os.getenv("ONBOARD_MAC") or "02:0b:0a:0d:00:01")
            if interface == AP_IF:
                mac = mac[:5] + bytes(((mac[5] + 1) & 0xFF,))
            self.c = {"essid": "", "password": "", "authmode": AUTH_OPEN, "channel": 1,
                      "reconnects": -1, "hostname": "onboard", "mac": mac}
        return self

    def active(self, on=None):
        if on is not None:
            self.s[0] = bool(on)
            if not on:
                self.disconnect()
                _networks()
                self.s[9] = _radio[2]
        return self.s[0]

    def scan(self):
        if not self.s[0] or self.interface != STA_IF:
            raise OSError("STA must be active")
        retries = self.c["reconnects"]
        if not self.isconnected() and self.s[1] is not None and (retries < 0 or
                                                                  self.s[8] <= retries):
            # ESP-IDF refuses to scan while the station tries to join, the
            # radio's own retries included (v1.25 then returns an empty list,
            # saying nothing); once config(reconnects=N)'s are spent it scans
            return []
        names = _SEC.split()
        found = []  # (a loop: a comprehension is one more function in RAM)
        for n in _networks(None, self.s[9]):
            found.append((n.get("ssid", "").encode(), _mac(n.get("bssid", "00:00:00:00:00:00")),
                          n.get("ch", 1), n.get("rssi", -90), names.index(n.get("sec", "OPEN")),
                          False))
        return found

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self.s[0]:
            raise OSError("STA must be active")
        retries = self.c["reconnects"]
        if not self.isconnected() and self.s[1] is not None and (retries < 0 or
                                                                  self.s[8] <= retries):
            # as v1.25 on the (emulated) ESP32: ESP-IDF refuses a join while
            # one is under way (as a scan, above), until disconnect() ends it
            raise OSError("Wifi Internal Error")
        self.disconnect()  # ESP-IDF leaves a network joined first, its event a moment later
        self.s[1:4] = [ssid, key or "", time.ticks_ms()]
        self.s[7:9] = [False, 0]

    def disconnect(self):
        # no event (and the reason kept) unless the station was joined
        if self.s[7]:
            self.s[6] = time.ticks_ms()
        self.s[1] = None
        self.s[7] = False

    def status(self, param=None):
        s = self.s
        if param == "rssi":
            net = _networks(s[1], s[9]) if s[1] else None
            return net.get("rssi", -90) if net else 0
        now = time.ticks_ms()
        if s[6] is not None:  # left, the event not handled yet: still joined
            if time.ticks_diff(now, s[6]) < _EVENT_MS:
                return STAT_GOT_IP
            s[4], s[6] = _ASSOC_LEAVE, None
        retries = self.c["reconnects"]
        if s[1] is not None:
            net = _networks(s[1], s[9])
            wrong = net is not None and net.get("password", "") != s[2]
            if s[7]:
                if net is None or wrong:  # the network went away: the radio tries again
                    s[3:5] = [now, STAT_BEACON_TIMEOUT]
                    s[7:9] = [False, 0]
            elif retries < 0 or s[8] <= retries:
                elapsed = time.ticks_diff(now, s[3])
                if net is None or wrong:
                    tries = elapsed // (_WRONG_MS if wrong else _ASSOCIATE_MS)
                    if tries:
                        s[4] = _HANDSHAKE_4WAY if wrong else STAT_NO_AP_FOUND
                        s[8] = tries if retries < 0 else min(tries, retries + 1)
                else:
                    behaviour = net.get("behaviour", "ok")
                    if behaviour == "weak" and not s[8]:
                        # the first try's handshake times out; a retry starts anew
                        if elapsed >= _WRONG_MS:
                            s[3:5] = [now, _HANDSHAKE_4WAY]
                            s[8] = 1
                    elif elapsed >= (_ASSOCIATE_MS if behaviour in ("ok", "weak") else _SLOW_MS
                                     if behaviour == "slow" else 1 << 30):
                        s[4] = 0  # an address clears the reason
                        s[7] = True
                    # ("no_ip": associated, no DHCP: no address ever)
        r = s[4]
        if s[7]:
            return STAT_GOT_IP
        if r in (STAT_NO_AP_FOUND, 210, 211, 212):
            return r
        if r in (STAT_WRONG_PASSWORD, 205):
            return STAT_WRONG_PASSWORD
        if r == _ASSOC_LEAVE:
            return STAT_IDLE
        if s[1] is not None and (retries < 0 or s[8] <= retries):
            return STAT_CONNECTING
        return r or STAT_IDLE

    def isconnected(self):
        return self.status() == STAT_GOT_IP if self.interface == STA_IF else self.s[0]

    def ifconfig(self, config=None):
        if config is None:
            if self.interface == AP_IF:
                return _ANY
            return (self.s[5] or _ANY) if self.isconnected() else ("0.0.0.0",) * 4
        # as the ESP32: a 4-tuple of addresses is a static address, "dhcp" DHCP
        if config == "dhcp":
            # ESP-IDF refuses to start its DHCP client while it runs (MicroPython
            # v1.25 raises RuntimeError "Wifi Unknown Error"): while connected by
            # DHCP, and for a moment after a disconnect (the event not yet handled)
            if self.isconnected() and self.s[5] is None:
                raise RuntimeError("Wifi Unknown Error: DHCP client already started")
            self.s[5] = None
        else:
            ok = len(config) == 4
            for a in config:  # (a loop: a generator is one more function in RAM)
                ok = ok and isinstance(a, str) and a.count(".") == 3
            if not ok:
                raise ValueError("ifconfig: (ip, mask, gw, dns) or 'dhcp'")
            self.s[5] = tuple(config)

    def config(self, *args, **kw):
        names = {"ssid": "essid", "key": "password"}
        c = dict(self.c)
        for k, v in kw.items():
            c[names.get(k, k)] = v
        if kw:
            # ESP-IDF refuses an access point's WPA key under 8 characters
            # (v1.25: OSError "Wifi Invalid Password"), and keeps its config
            if self.interface == AP_IF and c["authmode"] != AUTH_OPEN and len(c["password"]) < 8:
                raise OSError("Wifi Invalid Password")
            self.c = c
            return None
        if args[0] in ("password", "key"):
            raise ValueError("the password cannot be read back")
        return self.c[names.get(args[0], args[0])]
