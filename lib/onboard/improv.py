# Improv Wi-Fi serial v1 on the device's UART: what ESP Web Tools and the
# Improv SDK speak to give a device its Wi-Fi over USB. A packet is
# "IMPROV", version 1, type, length, data, checksum (sum of the preceding
# bytes & 0xFF); clients look for packets at a line start, so each packet
# is followed by a newline, and a newline after a client's packet is fine.
import asyncio
from micropython import const

from onboard import log, wifi

_HEADER = const(b"IMPROV\x01")
_MAX_DATA = const(128)
# packet types
_STATE = const(0x01)
_ERROR_STATE = const(0x02)
_RPC = const(0x03)
_RESULT = const(0x04)
# RPC commands
_WIFI_SETTINGS = const(0x01)
_GET_CURRENT_STATE = const(0x02)
_GET_DEVICE_INFO = const(0x03)
_GET_WIFI_NETWORKS = const(0x04)
# states and errors
_READY = const(0x02)
_PROVISIONING = const(0x03)
_PROVISIONED = const(0x04)
_ERR_INVALID_RPC = const(0x01)
_ERR_UNKNOWN_RPC = const(0x02)
_ERR_UNABLE_TO_CONNECT = const(0x03)
_TAG = const("improv")


def packet(kind, data):
    """One Improv packet (with its checksum) and the newline after it."""
    raw = bytearray(_HEADER)
    raw.append(kind)
    raw.append(len(data))
    raw += data
    raw.append(sum(raw) & 0xFF)
    return bytes(raw) + b"\n"


def strings(*items):
    out = bytearray()
    for s in items:
        b = s.encode()  # short by their sources: SSIDs, names, a URL
        out.append(len(b))
        out += b
    return bytes(out)


def result(command, *items):
    data = strings(*items)
    return packet(_RESULT, bytes((command, len(data))) + data)


class Improv:
    """Improv on a stream. info: (firmware name, version, chip, device name);
    scan() -> networks; join(ssid, password) -> awaitable 0 or last_error;
    arrive(fields, joined=True) takes credentials that have joined (the
    runtime's one door); url: where the device can be configured further.
    It runs only in setup mode, so it starts READY whatever was stored."""

    def __init__(self, stream, info, scan, join, arrive, url):
        # one stream both ways (a pty, a UART), or (read stream, write stream)
        self.stream, self.out = stream if isinstance(stream, tuple) else (stream, stream)
        self.info, self.scan, self.join, self.arrive, self.url = info, scan, join, arrive, url
        self.state = _READY

    def send(self, raw):
        self.out.write(raw)

    async def run(self, first=b""):
        # first: what already arrived (setup mode loads this code on a first byte)
        try:
            await self._serve(first)
        except OSError as e:  # the UART went away: setup mode carries on without it
            log.warn(_TAG, "stopped: %s", e)

    async def _serve(self, first):
        reader = asyncio.StreamReader(self.stream)
        buf = b""
        self.send(packet(_STATE, bytes((self.state,))))
        while True:
            byte = first or await reader.read(1)
            first = b""
            if not byte:
                return  # the stream ended: reading on would only spin
            if byte == b"\x03" and not buf.startswith(b"IMPROV"):
                # Ctrl-C, outside a packet: on a REPL's line (setup mode lets
                # the byte through to Improv) it stops the program, as it would
                raise KeyboardInterrupt
            buf += byte
            # one byte at a time: a header, once whole, is at the start
            if not buf.startswith(b"IMPROV"):
                buf = buf[-5:]  # keep what may be the start of a header
                continue
            if len(buf) < 10 or len(buf) < 10 + buf[8]:
                continue
            raw, buf, n = buf, b"", buf[8]
            if raw[6] != 1 or n > _MAX_DATA or (sum(raw[:-1]) & 0xFF) != raw[-1]:
                self.send(packet(_ERROR_STATE, bytes((_ERR_INVALID_RPC,))))
                continue
            if raw[7] == _RPC:
                await self.rpc(raw[9 : 9 + n])

    async def rpc(self, data):
        if len(data) < 2 or data[1] != len(data) - 2:
            self.send(packet(_ERROR_STATE, bytes((_ERR_INVALID_RPC,))))
            return
        command, body = data[0], data[2:]
        if command == _GET_CURRENT_STATE:
            self.send(packet(_STATE, bytes((self.state,))))
            if self.state == _PROVISIONED:
                self.send(result(command, self.url))
        elif command == _GET_DEVICE_INFO:
            self.send(result(command, *self.info))
        elif command == _GET_WIFI_NETWORKS:
            for net in self.scan():
                self.send(result(command, net["ssid"], str(net["rssi"]),
                                 "NO" if net["sec"] == "OPEN" else "YES"))
            self.send(result(command))
        elif command == _WIFI_SETTINGS:
            await self.provision(body)
        else:
            self.send(packet(_ERROR_STATE, bytes((_ERR_UNKNOWN_RPC,))))

    async def provision(self, body):
        try:
            n = body[0]
            ssid = bytes(body[1 : 1 + n]).decode()
            m = body[1 + n]
            password = bytes(body[2 + n : 2 + n + m]).decode()
            if 2 + n + m != len(body):
                raise ValueError
            wifi.check_credentials(ssid, password)
        except (IndexError, ValueError, UnicodeError):
            self.send(packet(_ERROR_STATE, bytes((_ERR_INVALID_RPC,))))
            return
        # no state change kept: nothing is read while join() runs
        self.send(packet(_STATE, bytes((_PROVISIONING,))))
        code = await self.join(ssid, password)
        if code:
            log.info(_TAG, "could not join %s (%d)", ssid, code)
            self.state = _READY
            self.send(packet(_ERROR_STATE, bytes((_ERR_UNABLE_TO_CONNECT,))))
            self.send(packet(_STATE, bytes((_READY,))))
            return
        try:
            self.arrive({"ssid": ssid, "pass": password}, True)
        except ValueError as e:
            log.info(_TAG, "not taken: %s", str(e))
            self.state = _READY
            self.send(packet(_ERROR_STATE, bytes((_ERR_INVALID_RPC,))))
            self.send(packet(_STATE, bytes((_READY,))))
            return
        self.state = _PROVISIONED
        self.send(packet(_STATE, bytes((_PROVISIONED,))))
        self.send(result(_WIFI_SETTINGS, self.url))


async def serve(rt, uart, ap, scan, url, first):
    # setup mode's Improv (onboard.setupmode), on the board's serial line
    # once its first byte has come
    from onboard.setupmode import arrive

    cfg = rt.config
    await Improv(uart, (cfg.get("name", "onboard"), cfg.get("fw_ver", "0.0.0"),
                        rt.board.CHIP, ap),
                 scan, lambda ssid, password: wifi.join(rt.station(), ssid, password),
                 lambda fields, joined: arrive(rt, fields, joined), url).run(first)
