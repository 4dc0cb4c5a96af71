"""Figures of the network core: HTTPS and MQTT heap next to their floors, .mpy sizes.

Everything runs against an in-process cloudsim (HTTPS API + Mosquitto)."""

import base64

from cloudsim.app import Cloudsim

from . import stock as S
from .measure import allocated, mpy_size, smallest_heap, workdir

HTTPS_SETUP = """
URL = {url!r}
CA = {ca!r}
AUTH = {auth!r}
"""

def _ca_file():
    # the CA file onboard is given: the DER one, as micropython-lib's clients
    # and the floor get it (the same input for all), when the build has
    # onboard.ca, which takes DER; older builds took PEM only
    return 'CA.replace(".pem", ".der")' if mpy_size("ca", missing_ok=True) else "CA"


def onboard_https():
    """The HTTPS POST through onboard.http, as a user writes it."""
    return f"""
from onboard.http import request
r = request("POST", URL, json={{"type": "production_token"}}, headers={{"Authorization": AUTH}},
            ca={_ca_file()}, timeout=10)
assert r.status_code == 201 and "token_id" in r.json()
"""


# The floor: what any verifying HTTPS POST needs at least.
FLOOR_HTTPS = """
import socket, tls, json
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_REQUIRED
with open(CA.replace(".pem", ".der"), "rb") as f:
    ctx.load_verify_locations(f.read())
host, port = URL.split("//")[1].split("/")[0].split(":")
s = socket.socket()
s.connect(socket.getaddrinfo(host, int(port))[0][-1])
ss = ctx.wrap_socket(s, server_hostname=host)
body = json.dumps({"type": "production_token"})
ss.write("POST /imp/v5/enroll HTTP/1.1\\r\\nHost: %s\\r\\nAuthorization: %s\\r\\n"
         "Content-Type: application/json\\r\\nContent-Length: %d\\r\\n"
         "Connection: close\\r\\n\\r\\n%s" % (host, AUTH, len(body), body))
reply = b""
while True:
    part = ss.read(512)
    if not part:
        break
    reply += part
ss.close()
assert b" 201 " in reply and "token_id" in json.loads(reply.split(b"\\r\\n\\r\\n", 1)[1])
"""

# The same floor verifying nothing, as requests does: the difference between
# the two is what verifying the server costs (the CA parsed, the chain checked).
FLOOR_HTTPS_UNVERIFIED = FLOOR_HTTPS.replace("CERT_REQUIRED", "CERT_NONE").replace(
    'with open(CA.replace(".pem", ".der"), "rb") as f:\n    ctx.load_verify_locations(f.read())\n',
    "")
assert FLOOR_HTTPS_UNVERIFIED.count("\n") == FLOOR_HTTPS.count("\n") - 2

# The requests module frozen in the Unix port, verifying nothing.
STOCK_HTTPS = """
import requests
r = requests.post(URL, json={"type": "production_token"}, headers={"Authorization": AUTH})
assert r.status_code == 201 and "token_id" in r.json()
r.close()
"""

MQTT_SETUP = """
PORT = {port}
TOKEN = {token!r}
CA = {ca!r}
TLS = {tls}
"""

def onboard_mqtt():
    """MQTT connect + QoS 1 publish through onboard.mqtt, the TLS context as a
    user of the blocking client makes it: onboard.ca's context from the CA
    file (umqtt.simple's figure gets the same file). For builds from before
    onboard.ca, the import they had (onboard.net's tls_context, else
    onboard.http's) is chosen here, not in the script: fallbacks written
    into the measured script would be compiled on the device's heap and
    counted (about 1 KB on 32-bit) where umqtt.simple's script has none.
    (Until issue 14 this used net.tls_context, as the runtime does: that also
    loads onboard.net, the asyncio transport, about 5.6 KB more on 64-bit.)"""
    source = ("onboard.ca import context" if mpy_size("ca", missing_ok=True) else
              "onboard.net import tls_context as context" if mpy_size("net", missing_ok=True)
              else "onboard.http import tls_context as context")
    return f"""
from onboard.mqtt import MQTTClient
ctx = None
if TLS:
    from {source}
    ctx = context({_ca_file()})
c = MQTTClient("bench", "127.0.0.1", PORT, user=TOKEN, password=TOKEN, ssl=ctx, timeout=10)
c.connect()
c.publish(b"bench/t", b"x" * 64, qos=1)
c.disconnect()
"""


def onboard_mqtt_their_context():
    """onboard.mqtt's exchange with the TLS context made by umqtt.simple's
    script's own lines (tls.SSLContext, load_verify_locations), not by
    onboard.ca: the two clients compared alone, the same context in both."""
    theirs = S.UMQTT[S.UMQTT.index("ctx = None"):S.UMQTT.index("c = MQTTClient")]
    ours = onboard_mqtt()
    return ours[:ours.index("ctx = None")] + theirs + ours[ours.index("c = MQTTClient"):]


def figures():
    # net.mpy is the transport asyncio HTTP and MQTT share (absent before it
    # existed: 0); ca.mpy its certificate loading, loaded only for TLS (before
    # it, http.mpy held it). Since issue 14 the blocking onboard.http loads
    # httpmsg (messages and framing) and ca but neither net nor asyncio; errors
    # when a request fails, redirect when a reply redirects; onboard.ahttp
    # (asyncio) loads httpmsg, net, errors and ca. Like for like with d2af53e:
    # https needs ca, plain MQTT does not (MQTT over TLS took its context from
    # onboard.http then, outside mqtt+errors).
    net, errors = mpy_size("net", missing_ok=True), mpy_size("errors")
    ca = mpy_size("ca", missing_ok=True)
    http, msg = mpy_size("http"), mpy_size("httpmsg", missing_ok=True)
    redirect = mpy_size("redirect", missing_ok=True)
    # since issue 14 the blocking onboard.mqtt loads mqttbase (packets, checks)
    # and errors only when something fails; onboard.amqtt (asyncio, the
    # runtime's) loads mqttbase, net and errors
    mqtt, base = mpy_size("mqtt"), mpy_size("mqttbase", missing_ok=True)
    amqtt = mpy_size("amqtt", missing_ok=True)
    rows = [("network", "http.mpy", http, "B", "<= 3,500 B"),
            ("network", "httpmsg.mpy", msg, "B", ""),
            ("network", "ahttp.mpy", mpy_size("ahttp", missing_ok=True), "B", ""),
            ("network", "redirect.mpy", redirect, "B", ""),
            ("network", "mqtt.mpy", mqtt, "B", "<= 3,500 B"),
            ("network", "mqttbase.mpy", base, "B", ""),
            ("network", "amqtt.mpy", amqtt, "B", ""),
            ("network", "net.mpy", net, "B", ""),
            ("network", "ca.mpy", ca, "B", ""),
            ("network", "errors.mpy", errors, "B", ""),
            ("network", "HTTPS request .mpy: http+httpmsg+ca (+errors, +redirect)",
             f"{http + msg + ca:,} ({http + msg + ca + errors + redirect:,})", "B",
             "<= 5,073 B (d2af53e: net+ca+http+errors)"),
            ("network", "MQTT .mpy: mqtt+mqttbase (+errors)",
             f"{mqtt + base:,} ({mqtt + base + errors:,})", "B",
             "<= 4,273 B (d2af53e: net+mqtt+errors)"),
            ("network", "runtime's MQTT .mpy: amqtt+mqttbase+net+errors",
             amqtt + base + net + errors, "B", "")]
    with workdir() as d:
        sim = Cloudsim(d, log=lambda line: None).start()
        try:
            ca = str(sim.dir / "ca.pem")
            (sim.dir / "ca.der").write_bytes(sim.ca.der())
            setup = HTTPS_SETUP.format(
                url=f"https://127.0.0.1:{sim.https_port}/imp/v5/enroll", ca=ca,
                auth="Basic " + base64.b64encode(sim.admin_token.encode()).decode())
            floor = allocated(FLOOR_HTTPS, setup, cwd=d)
            ours = allocated(onboard_https(), setup, cwd=d)
            stock = allocated(STOCK_HTTPS, setup, cwd=d)
            # as on a device with onboard frozen: the import is not paid per request
            imported = setup + "import onboard.http, socket, tls, json\n"
            ours_only = allocated(onboard_https(), imported, cwd=d)
            floor_only = allocated(FLOOR_HTTPS, imported, cwd=d)
            rows += [
                ("network", "HTTPS POST floor: socket+tls+verify (mem_peak)", floor, "B", ""),
                ("network", "HTTPS POST onboard.http (mem_peak)", ours, "B",
                 f"<= {int(floor * 1.15):,} B (1.15x floor)"),
                ("network", "  ratio to floor", round(ours / floor, 3), "x", "<= 1.15"),
                ("network", "HTTPS POST, modules already imported: floor", floor_only, "B", ""),
                ("network", "HTTPS POST, modules already imported: onboard.http", ours_only, "B",
                 f"ratio {ours_only / floor_only:.3f}x"),
                ("network", "HTTPS POST stock requests, no verification", stock, "B",
                 f"ratio {stock / floor:.3f}x"),
                ("network", "HTTPS POST onboard.http: smallest -X heapsize",
                 smallest_heap(setup + onboard_https(), cwd=d), "B", ""),
                ("network", "HTTPS POST floor: smallest -X heapsize",
                 smallest_heap(setup + FLOOR_HTTPS, cwd=d), "B", ""),
            ]
            umqtt = S.compiled(d)
            token = "bench-token-" + base64.b16encode(sim.admin_token[:6].encode()).decode()
            sim.broker.allow(token, token)
            for tls, port in ((False, sim.broker.mqtt_port), (True, sim.broker.mqtts_port)):
                setup = MQTT_SETUP.format(port=port, token=token, ca=ca, tls=tls)
                name = "TLS" if tls else "plain"
                goal = ""
                if umqtt:
                    theirs = allocated(S.UMQTT, S.first_on_path(umqtt) + setup, cwd=d)
                    goal = f"<= {theirs:,} B (umqtt.simple .mpy, measured now)"
                rows.append(("network", f"MQTT connect+QoS1 publish 64 B, {name} (mem_peak)",
                             allocated(onboard_mqtt(), setup, cwd=d), "B", goal))
                rows.append(("network", "  same, onboard.mqtt already imported",
                             allocated(onboard_mqtt(), setup + "import onboard.mqtt, tls\n",
                                       cwd=d), "B", ""))
                rows.append(("network", f"MQTT connect+QoS1 publish 64 B, {name}: smallest "
                             "-X heapsize", smallest_heap(setup + onboard_mqtt(), cwd=d), "B", ""))
        finally:
            sim.stop()
    return rows
