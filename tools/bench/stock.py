"""micropython-lib's requests and umqtt.simple, compiled here to .mpy from their
own source, so that onboard's clients are measured side by side with them in one
run (issue 14). Their source is not part of the project: MICROPYTHON_LIB names a
micropython-lib checkout or its git directory; without it a local mirror is used
if there is one, else the rows say that the source is absent."""

import os
import subprocess
from pathlib import Path

from onboard_cli.build import compile_one
from onboard_cli.paths import tool

# file in the compiled tree -> path in micropython-lib
SOURCES = {"requests/__init__.py": "python-ecosys/requests/requests/__init__.py",
           "umqtt/simple.py": "micropython/umqtt.simple/umqtt/simple.py"}
MIRROR = Path("/work/.mirror/micropython+micropython-lib/repo")

# The same exchanges as network.onboard_https() / onboard_mqtt(). requests cannot
# verify a certificate (it sets CERT_NONE); umqtt.simple verifies with the same
# context onboard builds, from the same CA.
REQUESTS_HTTPS = """
import requests
r = requests.post(URL, json={"type": "production_token"}, headers={"Authorization": AUTH})
assert r.status_code == 201 and "token_id" in r.json()
r.close()
"""

UMQTT = """
from umqtt.simple import MQTTClient
ctx = None
if TLS:
    import tls
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    with open(CA.replace(".pem", ".der"), "rb") as f:
        ctx.load_verify_locations(f.read())
c = MQTTClient("bench", "127.0.0.1", PORT, user=TOKEN, password=TOKEN, ssl=ctx)
c.connect()
c.publish(b"bench/t", b"x" * 64, qos=1)
c.disconnect()
"""


def _source(root, rel):
    if (root / rel).is_file():
        return (root / rel).read_bytes()
    proc = subprocess.run(["git", "--git-dir", str(root), "show", "HEAD:" + rel],
                          capture_output=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else None


def where():
    """The micropython-lib source in use (a folder or git directory), or None."""
    named = os.environ.get("MICROPYTHON_LIB")
    for root in ([Path(named)] if named else [MIRROR]):
        if root.exists() and all(_source(root, rel) for rel in SOURCES.values()):
            return root
    return None


def compiled(dest):
    """requests and umqtt.simple as .mpy under dest (a folder), or None when
    micropython-lib's source is not here."""
    root = where()
    if root is None:
        return None
    mpy_cross = tool("mpy-cross")
    for name, rel in SOURCES.items():
        src = Path(dest) / "src" / name
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(_source(root, rel) or b"")
        compile_one(mpy_cross, src, name, Path(dest) / "mpy" / name.replace(".py", ".mpy"))
    return Path(dest) / "mpy"


def first_on_path(folder):
    """Set-up text that puts folder ahead of the port's frozen modules (the Unix
    port freezes its own requests)."""
    return f"import sys\nsys.path.insert(0, {str(folder)!r})\n"
