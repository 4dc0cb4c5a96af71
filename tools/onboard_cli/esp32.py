"""`onboard esp32 run`: onboard on the emulated ESP32 (DESIGN.md section 12).

QEMU with Espressif's ESP32 machine and emulated Wi-Fi runs the stock
MicroPython firmware on a 4 MB flash image file, which is the board's flash:
made from the firmware when it does not exist, kept across runs. A SIGKILL of
QEMU is a power cut; the next run on the same flash is the next boot.

The board's UART0 is relayed to a TCP port ("repl" in the ready line, for
mpremote) and read here: its `@event` lines are printed as JSON lines, the
rest goes to stderr while no REPL client is connected. Each `--forward
NAME=P` makes host port P reachable from the board at 192.168.4.100:P, or at
192.168.4.100:G with `NAME=P:G` (QEMU runs `python -m onboard_cli.esp32 relay
P` per connection), and setup mode's
portal on the board's station interface is forwarded to a host port.
QEMU is killed when this command exits, and with it if this command is
killed (PR_SET_PDEATHSIG)."""

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .paths import ROOT, ToolError, stop_process, tool
from .ports import free_port

FLASH_SIZE = 4 * 1024 * 1024
APP_OFFSET = 0x1000
VFS_OFFSET = 0x200000  # the firmware's `vfs` partition: LittleFS v2, 4096-byte blocks
VFS_SIZE = 0x200000
BLOCK_SIZE = 4096
GUEST_HOST = "192.168.4.100"  # the board dials this address for a forwarded host port
STATION_IP = "192.168.4.15"  # what the emulator's DHCP gives the board's station
PORTAL_PORT = 80
NET = "192.168.4.0/24"
BOOT_TIMEOUT = 180  # seconds; the emulator's speed follows the host's load
DEFAULT_BOARD = "esp32_qemu"


# -- the emulator and the flash image --------------------------------------------------

def emulator():
    """(qemu, roms folder, firmware) from $QEMU, $QEMU_ROMS, $ESP32_FIRMWARE,
    else ../shared/tools/esp32-qemu beside the repository."""
    shared = ROOT.parent / "shared" / "tools" / "esp32-qemu"
    qemu = Path(os.environ.get("QEMU") or shared / "qemu-system-xtensa")
    roms = Path(os.environ.get("QEMU_ROMS") or shared)
    firmware = Path(os.environ.get("ESP32_FIRMWARE")
                    or shared / "ESP32_GENERIC-20250415-v1.25.0.bin")
    if not os.access(qemu, os.X_OK):
        raise ToolError(f"no emulator at {qemu}: set QEMU= (and QEMU_ROMS=, ESP32_FIRMWARE=)")
    if not (roms / "esp32-v3-rom.bin").is_file():
        raise ToolError(f"no ESP32 ROM images in {roms}: set QEMU_ROMS=")
    if not firmware.is_file():
        raise ToolError(f"no firmware at {firmware}: set ESP32_FIRMWARE=")
    return qemu, roms, firmware


def make_flash(flash, firmware):
    """A 4 MB flash image with the firmware at 0x1000 (esptool merge-bin)."""
    flash.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([tool("esptool"), "--chip", "esp32", "merge-bin", "--fill-flash-size",
                           "4MB", "-o", str(flash), hex(APP_OFFSET), str(firmware)],
                          capture_output=True, text=True)
    if proc.returncode or flash.stat().st_size != FLASH_SIZE:
        raise ToolError(f"esptool could not make {flash}: {proc.stderr.strip()[-300:]}")


def _littlefs(buffer, disk_version=0):
    from littlefs import LittleFS, UserContext

    # MicroPython's VfsLfs2 on the ESP32: 32-byte reads and programs. It writes on-disk
    # version 2.1 (upgrading a 2.0 filesystem at its first write); disk_version 0 reads any.
    return LittleFS(UserContext(buffer=buffer), mount=False, block_size=BLOCK_SIZE,
                    block_count=VFS_SIZE // BLOCK_SIZE, read_size=32, prog_size=32,
                    lookahead_size=32, disk_version=disk_version)


def mount(flash):
    """The flash image's filesystem (littlefs-python, read from a copy), or
    None when it has none yet (the firmware formats it at its first boot)."""
    from littlefs import LittleFSError

    with open(flash, "rb") as f:
        f.seek(VFS_OFFSET)
        data = bytearray(f.read(VFS_SIZE))
    fs = _littlefs(data)
    try:
        fs.mount()
    except LittleFSError:
        return None
    return fs


def _exists(fs, path):
    try:
        fs.stat(path)
        return True
    except Exception:  # noqa: BLE001  littlefs-python raises LittleFSError (ENOENT)
        return False


def has_onboard(flash):
    fs = mount(flash)
    return fs is not None and _exists(fs, "main.py") and _exists(fs, "onboard/runtime.mpy")


def write_files(flash, files):
    """Write these files into the flash image's filesystem (offline, before boot),
    beside what it holds; a flash without one gets a new filesystem."""
    fs = mount(flash)
    if fs is None:
        fs = _littlefs(bytearray(b"\xff" * VFS_SIZE), disk_version=0x00020000)  # the oldest v2
        fs.format()
        fs.mount()
    for name, src in files.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if not _exists(fs, folder):
                fs.mkdir(folder)
        with fs.open(name, "wb") as f:
            f.write(Path(src).read_bytes())
    fs.unmount()
    with open(flash, "r+b") as f:
        f.seek(VFS_OFFSET)
        f.write(fs.context.buffer)


def extract(flash, folder):
    """Copy every file of the flash image's filesystem into folder; return their names."""
    fs = mount(flash)
    if fs is None:
        raise ToolError(f"{flash}: no LittleFS filesystem at {VFS_OFFSET:#x}")
    folder = Path(folder)
    names = []
    for root, _dirs, files in fs.walk("/"):
        for name in files:
            path = f"{root.rstrip('/')}/{name}".lstrip("/")
            with fs.open(path, "rb") as f:
                data = f.read()
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(data)
            names.append(path)
    return sorted(names)


def parse_forwards(items):
    """--forward NAME=HOSTPORT[:GUESTPORT] options: {name: (host port, the port
    the board dials at GUEST_HOST, by default the same)}."""
    forwards, guests = {}, {}
    for item in items or ():
        name, sep, ports = item.partition("=")
        ports = ports.split(":")
        if (not sep or not name or len(ports) > 2
                or not all(p.isdigit() and 0 < int(p) < 65536 for p in ports)):
            raise ToolError(f"--forward {item}: give NAME=HOSTPORT or NAME=HOSTPORT:GUESTPORT,"
                            " e.g. mqtts=8883 or mqtts=41883:8883")
        host, guest = int(ports[0]), int(ports[-1])
        if guests.setdefault(guest, host) != host:
            raise ToolError(f"--forward {item}: the board's port {guest} is forwarded"
                            f" to host port {guests[guest]} already")
        forwards[name] = (host, guest)
    return forwards


def qemu_command(qemu, roms, flash, serial_port, portal_port, forwards):
    relay = f"{sys.executable} -m onboard_cli.esp32 relay"
    if " " in sys.executable or "," in sys.executable:
        raise ToolError(f"QEMU's guestfwd cannot run {sys.executable} (a space or comma)")
    nic = f"user,model=esp32_wifi,restrict=on,net={NET}"
    nic += f",hostfwd=tcp:127.0.0.1:{portal_port}-{STATION_IP}:{PORTAL_PORT}"
    for host, guest in sorted(set(forwards.values())):
        nic += f",guestfwd=tcp:{GUEST_HOST}:{guest}-cmd:{relay} {host}"
    # (debug-threads: the board's CPU threads are named "CPU 0/TCG" and "CPU 1/TCG")
    return [str(qemu), "-L", str(roms), "-display", "none", "-monitor", "none",
            "-name", "esp32,debug-threads=on",
            "-machine", "esp32-picsimlab", "-accel", "tcg,thread=multi",
            "-drive", f"file={flash},if=mtd,format=raw",
            "-global", "driver=timer.esp32.timg,property=wdt_disable,value=true",
            # wait=on: QEMU starts the board once this command is connected, so no output is lost
            "-serial", f"tcp:127.0.0.1:{serial_port},server=on,wait=on,nodelay=on",
            "-nic", nic]


def _die_with_parent():
    # QEMU gets SIGKILL when this command dies, however it dies: no emulator outlives it
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# -- the board's UART ---------------------------------------------------------------------

class Uart:
    """The board's UART0: read here (events, log), relayed to one REPL client at a time."""

    def __init__(self, conn, start, portal_url):
        self.conn = conn
        self.start = start
        self.portal_url = portal_url
        self.client = None
        self.lock = threading.Lock()
        self.seen = bytearray()  # the last 8 KB since start or mark(), for wait_for()
        self.cond = threading.Condition()
        self.closed = False
        self.held = []  # events before the ready line; None once it is out

    def mark(self):
        """Forget what the board printed so far (wait_for looks at what comes next)."""
        with self.cond:
            self.seen = bytearray()

    def wait_for(self, texts, timeout):
        """Wait until the board has printed one of texts (bytes) since it started."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(t in self.seen for t in texts) and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return any(t in self.seen for t in texts)

    def release(self, ready):
        """Print the ready line, then the events that came before it."""
        with self.lock:
            for line in [json.dumps(ready)] + self.held:
                print(line, flush=True)
            self.held = None

    def emit(self, event):
        line = json.dumps({"t": round(time.monotonic() - self.start, 3), **event})
        with self.lock:
            if self.held is None:
                print(line, flush=True)
            else:
                self.held.append(line)

    def read_board(self):
        line = bytearray()
        while True:
            try:
                data = self.conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.closed = True
                    self.cond.notify_all()
                return
            with self.cond:
                self.seen += data
                del self.seen[:-8192]
                self.cond.notify_all()
            with self.lock:
                client = self.client
            if client:
                try:
                    client.sendall(data)
                except OSError:
                    pass
            line += data
            while b"\n" in line:
                i = line.index(b"\n")
                self.line(bytes(line[:i]).rstrip(b"\r"), client is not None)
                del line[:i + 1]
            if len(line) > 4096:  # no newline in sight: a binary transfer, not a log
                del line[:]

    def line(self, raw, quiet):
        text = raw.decode("utf-8", "replace")
        at = text.find("@event ")
        if at >= 0:
            try:
                event = json.loads(text[at + 7:])
            except ValueError:
                event = None
            if isinstance(event, dict):
                if event.get("portal"):
                    event["portal"] = self.portal_url  # the board's portal, as the host reaches it
                self.emit(event)
                return
        if not quiet:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def serve(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.client = client
            try:
                while True:
                    data = client.recv(4096)
                    if not data:
                        break
                    self.conn.sendall(data)
            except OSError:
                pass
            finally:
                with self.lock:
                    self.client = None
                client.close()


def connect_serial(port, qemu_proc, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=2)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn
        except OSError:
            if qemu_proc.poll() is not None:
                raise ToolError(f"QEMU exited ({qemu_proc.returncode}) before it started") from None
            if time.monotonic() > deadline:
                raise ToolError("QEMU's serial port did not open") from None
            time.sleep(0.05)


def run(args):
    for name in ("config", "ca"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            raise ToolError(f"--{name} {value}: no such file")
    if args.config and not args.bare:
        from .deploy import check_config

        check_config(Path(args.config))  # as `onboard deploy`: before anything starts
    qemu, roms, firmware = emulator()
    forwards = parse_forwards(args.forward)
    flash = Path(args.flash).resolve()
    if not flash.exists():
        make_flash(flash, firmware)
    elif flash.stat().st_size != FLASH_SIZE:
        raise ToolError(f"--flash {flash}: not a 4 MB flash image")
    deploy = None
    if not args.bare and not has_onboard(flash):
        from .build import build
        from .deploy import files as deploy_files

        build()
        files = deploy_files(args.board, args.config, args.ca)  # (as `onboard deploy` writes them)
        if args.offline:
            write_files(flash, files)
        else:
            deploy = files
    serial_port, portal_port, repl_port = free_port(), free_port(), free_port()
    portal_url = f"http://127.0.0.1:{portal_port}/"
    start = time.monotonic()
    # the relays note each connection beside the flash image (kept for the next boot's report)
    env = dict(os.environ, ONBOARD_RELAY_LOG=str(flash) + ".relays")
    proc = subprocess.Popen(qemu_command(qemu, roms, flash, serial_port, portal_port, forwards),
                            stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
                            preexec_fn=_die_with_parent, env=env)

    def stop(*_):
        # only a signal here: the main thread is in proc.wait() and cleans up after it
        if proc.poll() is None:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    listener = None
    try:
        conn = connect_serial(serial_port, proc)
        conn.settimeout(None)
        uart = Uart(conn, start, portal_url)
        threading.Thread(target=uart.read_board, daemon=True).start()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", repl_port))
        listener.listen(1)
        threading.Thread(target=uart.serve, args=(listener,), daemon=True).start()
        if deploy:
            mpremote_deploy(uart, repl_port, deploy, proc)
        # up: at the REPL prompt, or running onboard (mpremote's Ctrl-C reaches it)
        if not uart.wait_for((b">>> ", b"@event "), BOOT_TIMEOUT):
            raise ToolError("the board did not come up (no REPL prompt, no event)")
        uart.release({"repl": f"socket://127.0.0.1:{repl_port}",
                      "forwards": {n: f"{GUEST_HOST}:{g}" for n, (_, g) in forwards.items()},
                      "portal": portal_url, "qemu_pid": proc.pid})
        return proc.wait()
    finally:
        stop_process(proc, grace=5)
        if listener:
            listener.close()


def mpremote_deploy(uart, repl_port, files, proc):
    """files ({path on the board: host file}) onto the freshly booted board as
    `onboard deploy` writes them (mpremote)."""
    from .deploy import commands

    # the first boot formats the filesystem, then the REPL prompt comes
    if not uart.wait_for((b">>> ",), BOOT_TIMEOUT):
        raise ToolError("the board showed no REPL prompt")
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        cmd = commands(f"socket://127.0.0.1:{repl_port}", files, folder)
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                              stderr=sys.stderr)
    if done.returncode or proc.poll() is not None:
        raise ToolError("mpremote could not deploy onboard to the emulated board")
    uart.mark()  # mpremote's reset: wait for the board to come up again
    sys.stderr.write(f"onboard esp32: deployed in {time.monotonic() - began:.1f} s\n")


# -- the relay QEMU runs for each connection the board opens to 192.168.4.100:P ------------

def relay_note(port, what):
    """One line in $ONBOARD_RELAY_LOG (what the relays did, for a failed run's report)."""
    path = os.environ.get("ONBOARD_RELAY_LOG")
    if path:
        try:
            with open(path, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} pid {os.getpid()} port {port}: {what}\n")
        except OSError:
            pass  # a note is not worth a lost connection


def relay(port):
    """Relay stdin/stdout (the board's connection, given by QEMU) to 127.0.0.1:port."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # stderr is the board's connection too: keep tracebacks off it
    try:
        host = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError as e:
        relay_note(port, f"host refused: {e}")
        return 1
    relay_note(port, "board connected, host connected")
    host.settimeout(None)
    ends = {0: host.fileno(), host.fileno(): 1}
    open_ends = set(ends)
    while open_ends:
        for fd in select.select(list(open_ends), [], [])[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                open_ends.discard(fd)
                try:
                    if fd == 0:
                        host.shutdown(socket.SHUT_WR)
                    else:
                        socket.socket(fileno=os.dup(1)).shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            view = memoryview(data)
            while view:
                view = view[os.write(ends[fd], view):]
    relay_note(port, "closed")
    return 0


def files_main(args):
    names = extract(Path(args.flash), args.out)
    for name in names:
        print(name)


def main(args):
    if args.action == "files":
        return files_main(args)
    return run(args)


def add_parsers(sub):
    e = sub.add_parser("esp32", help="onboard on the emulated ESP32 (QEMU)").add_subparsers(
        dest="action", required=True)
    r = e.add_parser("run", help="boot the emulated board; print its ready line and events")
    r.add_argument("--flash", required=True,
                   help="the board's 4 MB flash image (made from the firmware when missing)")
    r.add_argument("--config", default=str(ROOT / "firmware" / "config.example.json"),
                   help="device config, copied as /config.json when onboard is deployed")
    r.add_argument("--ca", help="the CA file the device trusts (copied as /ca.pem)")
    r.add_argument("--forward", action="append", metavar="NAME=HOSTPORT[:GUESTPORT]",
                   help="make host port P reachable from the board at 192.168.4.100:P"
                   " (at 192.168.4.100:G with NAME=P:G)")
    r.add_argument("--board", default=DEFAULT_BOARD, help="a folder of boards/")
    how = r.add_mutually_exclusive_group()
    how.add_argument("--offline", action="store_true",
                     help="put onboard into the flash image before boot, not through mpremote")
    how.add_argument("--bare", action="store_true",
                     help="deploy nothing: the firmware as flashed (for onboard test-device)")
    f = e.add_parser("files", help="copy the files of a flash image's filesystem to a folder")
    f.add_argument("--flash", required=True)
    f.add_argument("--out", required=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "relay":
        sys.exit(relay(int(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} relay PORT")
