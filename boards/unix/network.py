# A stand-in for the ESP32 `network` module on the Unix port, driven by a
# radio file (JSON, path in $ONBOARD_RADIO):
#   {"networks": [{"ssid", "bssid", "rssi", "sec", "ch", "password",
#                  "behaviour": "ok" | "no_ip" | "slow"}]}
# "sec" is one of Edgent's names (SEC_AUTH); any other is refused, loudly.
# The file is re-read every 250 ms, so a test can take a network away under
# a running device. Association is asynchronous, as on the ESP32:
# connect() returns at once and status() moves on with time.
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
AUTH_OPEN = const(0)
AUTH_WEP = const(1)
AUTH_WPA_PSK = const(2)
AUTH_WPA2_PSK = const(3)
AUTH_WPA_WPA2_PSK = const(4)
AUTH_WPA3_PSK = const(6)

SEC_NAMES = ("OPEN", "WEP", "WPA", "WPA2", "WPA+WPA2", "WPA2-EAP", "WPA3", "WPA2+WPA3", "WAPI")
SEC_AUTH = {name: i for i, name in enumerate(SEC_NAMES)}  # Edgent's name -> ESP32 authmode
_ASSOCIATE_MS = const(150)  # "ok": association and DHCP
_SLOW_MS = const(3000)  # "slow"
_WRONG_MS = const(400)  # a wrong password is reported after the 4-way handshake
_REREAD_MS = const(250)
_radio = {"read": None, "networks": []}


def radio():
    """The networks in the air now, from the radio file."""
    path = os.getenv("ONBOARD_RADIO")
    now = time.ticks_ms()
    if path and (_radio["read"] is None or time.ticks_diff(now, _radio["read"]) >= _REREAD_MS):
        try:
            with open(path) as f:
                nets = json.load(f).get("networks", [])
        except (OSError, ValueError, AttributeError):
            nets = []  # no file, or one being rewritten: no networks this time
        _radio["read"] = now
        nets = nets if isinstance(nets, list) else []
        for n in nets:
            if n.get("sec", "OPEN") not in SEC_AUTH:
                raise ValueError("radio file %s: network %r: sec %r is not one of %s"
                                 % (path, n.get("ssid"), n.get("sec"), ", ".join(SEC_NAMES)))
        _radio["networks"] = nets
    return _radio["networks"]


def _find(ssid):
    best = None
    for n in radio():
        if n.get("ssid") == ssid and (best is None or n.get("rssi", -100) > best.get("rssi", -100)):
            best = n
    return best


def _mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


class WLAN:
    _instances = {}

    def __new__(cls, interface=STA_IF):
        # like the ESP32: one object per interface
        if interface not in cls._instances:
            obj = object.__new__(cls)
            obj._init(interface)
            cls._instances[interface] = obj
        return cls._instances[interface]

    def _init(self, interface):
        self.interface = interface
        self._active = False
        self._ssid = None
        self._key = None
        self._since = 0
        self._status = STAT_IDLE
        self._static = None  # (ip, mask, gw, dns) set by ifconfig(), None: DHCP
        self._config = {"essid": "", "password": "", "authmode": AUTH_OPEN, "channel": 1,
                        "reconnects": -1, "hostname": "onboard",
                        "mac": _mac_bytes(os.getenv("ONBOARD_MAC") or "02:0b:0a:0d:00:01")}
        if interface == AP_IF:
            self._config["mac"] = bytes(self._config["mac"][:5]) + bytes(
                ((self._config["mac"][5] + 1) & 0xFF,))

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self.disconnect()
        return self._active

    def scan(self):
        if not self._active or self.interface != STA_IF:
            raise OSError("STA must be active")
        return [(n.get("ssid", "").encode(), _mac_bytes(n.get("bssid", "00:00:00:00:00:00")),
                 n.get("ch", 1), n.get("rssi", -90), SEC_AUTH[n.get("sec", "OPEN")], False)
                for n in radio()]

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("STA must be active")
        self._ssid = ssid
        self._key = key or ""
        self._since = time.ticks_ms()
        self._status = STAT_CONNECTING

    def disconnect(self):
        self._ssid = None
        self._status = STAT_IDLE

    def status(self, param=None):
        if param == "rssi":
            n = _find(self._ssid) if self._ssid else None
            return n.get("rssi", -90) if n else 0
        if self._ssid is None:
            return self._status
        net = _find(self._ssid)
        elapsed = time.ticks_diff(time.ticks_ms(), self._since)
        if self._status == STAT_GOT_IP:
            if net is None or (net.get("password", "") != self._key):
                self._status = STAT_BEACON_TIMEOUT  # the network went away
            return self._status
        if self._status != STAT_CONNECTING:
            return self._status
        if net is None:
            if elapsed >= _ASSOCIATE_MS:
                self._status = STAT_NO_AP_FOUND
        elif net.get("password", "") != self._key:
            if elapsed >= _WRONG_MS:
                self._status = STAT_WRONG_PASSWORD
        else:
            behaviour = net.get("behaviour", "ok")
            if behaviour == "ok" and elapsed >= _ASSOCIATE_MS or \
                    behaviour == "slow" and elapsed >= _SLOW_MS:
                self._status = STAT_GOT_IP
            # "no_ip": associated, but DHCP never answers: stays CONNECTING
        return self._status

    def isconnected(self):
        return self.status() == STAT_GOT_IP if self.interface == STA_IF else self._active

    def ifconfig(self, config=None):
        if config is not None:
            # as the ESP32: a 4-tuple of addresses is a static address, "dhcp" DHCP
            if config == "dhcp":
                self._static = None
            elif len(config) != 4 or not all(isinstance(a, str) and a.count(".") == 3
                                             for a in config):
                raise ValueError("ifconfig: (ip, mask, gw, dns) or 'dhcp'")
            else:
                self._static = tuple(config)
            return None
        if self.interface == AP_IF:
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        if self.isconnected():
            return self._static or ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kw):
        if kw:
            for k, v in kw.items():
                if k == "ssid":
                    k = "essid"
                if k == "key":
                    k = "password"
                self._config[k] = v
            return None
        name = args[0]
        if name == "ssid":
            name = "essid"
        if name in ("password", "key"):
            raise ValueError("the password cannot be read back")
        return self._config[name]
