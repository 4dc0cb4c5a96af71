"""Mosquitto as a child process on loopback, with credentials cloudsim manages.

Issued device credentials go into a password file (PBKDF2-SHA512, the
format mosquitto_passwd writes); revoking or replacing one rewrites the file
and sends SIGHUP, after which Mosquitto refuses the old credentials.

A password file cannot hold a user name with a colon (AllThingsTalk's
"maker:..." device tokens), and it always checks the password (AllThingsTalk
takes any). Mosquitto's dynamic-security plugin lifts the first limit but
not the second (a client it knows must give its password), so such logins
go through a small login front instead (login_port, login_tls_port): it
reads the CONNECT, accepts the user name if it was allowed with
password=None (any password), and logs in to Mosquitto as that user's
internal alias from the password file; then it only passes bytes along.
Any other login passes through the front unchanged."""

import asyncio
import base64
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

from onboard_cli.paths import stop_process
from onboard_cli.ports import free_port


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
        self._topics = {}  # username -> the topic filters it may publish and subscribe to
        self.aliases = {}  # user name taking any password -> (internal alias, its secret)
        self.front = None
        self.login_port = self.login_tls_port = 0
        self._lock = threading.Lock()
        self.proc = None
        self.log_path = self.dir / "mosquitto.log"

    def _write_passwords(self):
        tmp = self.dir / "passwd.tmp"
        tmp.write_text("".join(f"{u}:{h}\n" for u, h in self._users.items()))
        tmp.chmod(0o600)
        os.replace(tmp, self.dir / "passwd")
        # each user's topics (a user with none listed may use none)
        tmp = self.dir / "acl.tmp"
        tmp.write_text("".join(f"user {u}\n" + "".join(f"topic readwrite {t}\n" for t in ts)
                               for u, ts in self._topics.items()))
        os.replace(tmp, self.dir / "acl")

    def start(self):
        self._write_passwords()
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\n"
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {self.dir / 'passwd'}\n"
            f"acl_file {self.dir / 'acl'}\n"
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
        since = self._log.tell()  # (the log of an earlier run in this folder: --state-dir)
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        (self.dir / "mosquitto.pid").write_text(str(self.proc.pid))
        # Mosquitto listens before it sets up its signal handlers, and a SIGHUP
        # (a reload: allow, revoke) in between ends it; it logs "running" once
        # they are set (CI at df55a69: the broker gone at its first reload)
        if not (wait_port(self.mqtt_port, self.proc) and wait_port(self.mqtts_port, self.proc)
                and self._wait_log(b" running", since)):
            self.stop()
            raise BrokerError(f"mosquitto did not start; see {self.log_path}")
        self.front = LoginFront(self)
        self.login_port, self.login_tls_port = self.front.start()
        return self

    def _wait_log(self, words, since, seconds=15):
        # True once words are in the log past offset since
        deadline = time.monotonic() + seconds
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                if words in self.log_path.read_bytes()[since:]:
                    return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

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

    def allow(self, username, password, topics=("#",)):
        """Accept these credentials (replacing any password the user had),
        for these topic filters only (a device token: its own device's);
        password None: any password, through the login front."""
        with self._lock:
            if password is None:
                alias = "any-" + hashlib.sha256(username.encode()).hexdigest()[:32]
                secret = secrets.token_urlsafe(18)
                self.aliases[username] = (alias, secret)
                self._users[alias] = password_hash(secret)
                self._topics[alias] = topics
            else:
                self._users[username] = password_hash(password)
                self._topics[username] = topics
            self._reload()

    def revoke(self, username):
        with self._lock:
            alias = self.aliases.pop(username, (username,))[0]
            self._topics.pop(alias, None)
            if self._users.pop(alias, None) is not None:
                self._reload()

    def stop(self):
        if self.front:
            self.front.stop()
        stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()


class LoopbackFront:
    """An asyncio server on its own thread, one plain and one TLS listener on
    free loopback ports, each connection handed to self._client(reader, writer)."""

    def __init__(self, certfile, keyfile):
        self.loop = asyncio.new_event_loop()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(str(certfile), str(keyfile))

    def listen(self):
        """Start; returns (plain port, TLS port)."""
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

        async def listen():
            plain = await asyncio.start_server(self._client, "127.0.0.1", 0)
            tls = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self._tls)
            return plain.sockets[0].getsockname()[1], tls.sockets[0].getsockname()[1]

        return asyncio.run_coroutine_threadsafe(listen(), self.loop).result()

    async def _client(self, reader, writer):
        raise NotImplementedError

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


class LoginFront(LoopbackFront):
    """Logins Mosquitto's password file cannot hold, in front of its plain
    listener (plain and TLS here)."""

    def __init__(self, broker):
        super().__init__(broker.certfile, broker.keyfile)
        self.broker = broker
        self.logins = []  # (user name as given, accepted): what the front saw

    def start(self):
        return self.listen()

    async def _client(self, reader, writer):
        from .mqttfront import CONNECT, build_connect, packet, parse_connect, read_packet

        up_writer = None
        try:
            got = await asyncio.wait_for(read_packet(reader), 10)
            if not got or got[0] >> 4 != CONNECT:
                return
            c = parse_connect(got[1])
            user = (c["username"] or b"").decode(errors="replace")
            alias = self.broker.aliases.get(user)
            self.logins.append((user, alias is not None))
            first = packet(got[0], got[1])  # not one of ours: Mosquitto judges it as it came
            if alias:
                first = build_connect(c, c["client_id"], alias[0].encode(), alias[1].encode(),
                                      b"")
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1",
                                                                 self.broker.mqtt_port)
            up_writer.write(first)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ValueError, struct.error, IndexError, asyncio.TimeoutError,
                asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            for w in (writer, up_writer):
                if w:
                    w.close()


async def _pipe(reader, writer):
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()
