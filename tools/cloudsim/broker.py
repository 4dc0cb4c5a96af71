"""Mosquitto as a child process on loopback, with credentials cloudsim manages.

Issued device credentials go into a password file (PBKDF2-SHA512, the
format mosquitto_passwd writes); revoking or replacing one rewrites the file
and sends SIGHUP, after which Mosquitto refuses the old credentials."""

import base64
import getpass
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from onboard_cli.paths import stop_process


class BrokerError(Exception):
    pass


def mosquitto_binary():
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if not found:
        raise BrokerError("mosquitto not found: run `make setup` "
                          "(or: sudo apt-get install mosquitto)")
    return found


def password_hash(password, iterations=101):
    """A Mosquitto 2 password-file hash ($7$: PBKDF2-SHA512)."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    """Mosquitto with a plain and a TLS listener on 127.0.0.1."""

    def __init__(self, state_dir, certfile, keyfile, mqtt_port=0, mqtts_port=0):
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mqtt_port = mqtt_port or free_port()
        self.mqtts_port = mqtts_port or free_port()
        self.certfile, self.keyfile = certfile, keyfile
        self._users = {}  # username -> password hash
        self._lock = threading.Lock()
        self.proc = None
        self.log_path = self.dir / "mosquitto.log"

    def _write_passwords(self):
        tmp = self.dir / "passwd.tmp"
        tmp.write_text("".join(f"{u}:{h}\n" for u, h in self._users.items()))
        tmp.chmod(0o600)
        os.replace(tmp, self.dir / "passwd")

    def start(self):
        self._write_passwords()
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\n"
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {self.dir / 'passwd'}\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "max_keepalive 65535\n"
            f"listener {self.mqtt_port} 127.0.0.1\n"
            f"listener {self.mqtts_port} 127.0.0.1\n"
            f"certfile {self.certfile}\n"
            f"keyfile {self.keyfile}\n"
        )
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        (self.dir / "mosquitto.pid").write_text(str(self.proc.pid))
        if not (wait_port(self.mqtt_port, self.proc) and wait_port(self.mqtts_port, self.proc)):
            self.stop()
            raise BrokerError(f"mosquitto did not start; see {self.log_path}")
        return self

    def _reloads(self):
        try:
            return self.log_path.read_bytes().count(b"Reloading config.")
        except OSError:
            return 0

    def _reload(self):
        # Returns once Mosquitto has begun the reload: its loop is single-threaded,
        # so any connection it handles after that sees the new password file.
        self._write_passwords()
        if not self.proc or self.proc.poll() is not None:
            return
        before = self._reloads()
        deadline = time.monotonic() + 15
        while self._reloads() == before:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BrokerError(f"mosquitto did not reload; see {self.log_path}")
            # a signal that lands while Mosquitto is still reloading is dropped: send
            # again until a new reload shows in the log
            self.proc.send_signal(signal.SIGHUP)
            resend = time.monotonic() + 0.5
            while self._reloads() == before and time.monotonic() < resend:
                # Mosquitto notices the signal when its event loop wakes: wake it
                try:
                    socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=1).close()
                except OSError:
                    pass
                time.sleep(0.01)

    def allow(self, username, password):
        """Accept these credentials (replacing any password the user had)."""
        with self._lock:
            self._users[username] = password_hash(password)
            self._reload()

    def revoke(self, username):
        with self._lock:
            if self._users.pop(username, None) is not None:
                self._reload()

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
