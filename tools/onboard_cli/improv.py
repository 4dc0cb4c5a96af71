"""`onboard improv --port P`: give a device its Wi-Fi over serial, as ESP Web
Tools does, with Improv Wi-Fi serial v1."""

import os
import select
import socket
import termios
import time
import tty

from .paths import ToolError

STATE, ERROR, RPC, RESULT = 1, 2, 3, 4
WIFI_SETTINGS, GET_CURRENT_STATE, GET_DEVICE_INFO, GET_WIFI_NETWORKS = 1, 2, 3, 4
STATES = {1: "authorization required", 2: "ready", 3: "provisioning", 4: "provisioned"}
ERRORS = {0: "no error", 1: "invalid RPC packet", 2: "unknown RPC command",
          3: "unable to connect", 255: "unknown error"}


def packet(kind, data, checksum=None):
    raw = b"IMPROV\x01" + bytes((kind, len(data))) + data
    return raw + bytes(((sum(raw) & 0xFF) if checksum is None else checksum,))


def rpc(command, data=b""):
    return packet(RPC, bytes((command, len(data))) + data)


def wifi_settings(ssid, password):
    s, p = ssid.encode(), password.encode()
    return rpc(WIFI_SETTINGS, bytes((len(s),)) + s + bytes((len(p),)) + p)


def parse_strings(data):
    out, i = [], 0
    while i < len(data):
        n = data[i]
        out.append(data[i + 1 : i + 1 + n].decode())
        i += 1 + n
    return out


class Serial:
    """A raw serial port, the pty of a simulated device, or socket://HOST:PORT
    (a UART relayed over TCP: the "repl" of `onboard esp32 run`)."""

    def __init__(self, path):
        self.sock = None
        self.buf = b""
        try:
            if path.startswith("socket://"):
                host, _, port = path[9:].rpartition(":")
                self.sock = socket.create_connection((host, int(port)), timeout=30)
                self.sock.settimeout(None)  # blocking: read after select, as a tty's fd
                self.fd = self.sock.fileno()
                return
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        except ValueError:
            raise ToolError(f"{path}: not socket://HOST:PORT") from None
        except OSError as e:
            raise ToolError(f"{path}: {e.strerror}") from None
        if os.isatty(self.fd):
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[4] = attrs[5] = termios.B115200
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def send(self, raw, newline=True):
        os.write(self.fd, raw + (b"\n" if newline else b""))

    def packet(self, timeout=10):
        """The next Improv packet as (type, data), skipping log lines; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"IMPROV")
            if i >= 0 and len(self.buf) >= i + 9 and len(self.buf) >= i + 10 + self.buf[i + 8]:
                n = self.buf[i + 8]
                raw = self.buf[i : i + 10 + n]
                self.buf = self.buf[i + 10 + n :]
                if sum(raw[:-1]) & 0xFF == raw[-1]:
                    return raw[7], raw[9 : 9 + n]
                continue
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            self.buf += os.read(self.fd, 1024)

    def close(self):
        if self.sock:
            self.sock.close()
        else:
            os.close(self.fd)


def describe(kind, data):
    if kind == STATE:
        return {"state": STATES.get(data[0], data[0])}
    if kind == ERROR:
        return {"error": ERRORS.get(data[0], data[0])}
    if kind == RESULT:
        return {"result": data[0], "strings": parse_strings(data[2 : 2 + data[1]])}
    return {"type": kind, "data": data.hex()}


def main(args):
    # (each goes in one length byte; an ESP32 takes a 32-byte SSID and a
    # 64-character WPA2 key at most)
    for option, value, most in (("--ssid", args.ssid or "", 32),
                                ("--password", args.password or "", 64)):
        if len(value.encode()) > most:
            raise ToolError(f"{option}: at most {most} bytes (UTF-8)")
    port = Serial(args.port)
    try:
        port.send(rpc(GET_DEVICE_INFO))
        info = port.packet(args.timeout)
        while info and info[0] != RESULT:
            info = port.packet(args.timeout)
        if not info:
            raise ToolError(f"no Improv device answered on {args.port}")
        print("device:", " / ".join(parse_strings(info[1][2:])))
        if not args.ssid:
            return 0
        port.send(wifi_settings(args.ssid, args.password or ""))
        while True:
            got = port.packet(args.timeout + 20)
            if got is None:
                raise ToolError("the device did not answer the Wi-Fi settings")
            kind, data = got
            if kind == ERROR and data[0]:
                raise ToolError("device: " + ERRORS.get(data[0], str(data[0])))
            if kind == RESULT and data[0] == WIFI_SETTINGS:
                print("provisioned:", " ".join(parse_strings(data[2:])))
                return 0
    finally:
        port.close()
