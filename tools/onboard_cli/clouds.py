"""The clouds' token commands: `onboard imp|blynk|spokezone|plgd|att ...`.

Each talks to a cloud's HTTPS API (a real one, or cloudsim with --ca) and
prints what it got as JSON on one line; errors are one line on stderr."""

import base64
import json
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .paths import ToolError, mpremote


def request(args, method, path, body=None, headers=None, form=False):
    ctx = ssl.create_default_context(cafile=args.ca) if args.ca else ssl.create_default_context()
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(args.api.rstrip("/") + path, data=data, method=method,
                                 headers=hdrs)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=args.timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            why = json.loads(e.read()).get("error", e.reason)
        except (ValueError, AttributeError):
            why = e.reason
        raise ToolError(f"{method} {path}: {e.code} {why}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ToolError(f"{args.api}: {getattr(e, 'reason', e)}") from None


def show(doc):
    print(json.dumps(doc))


def canonical(value):
    return "0x%016x" % (value if isinstance(value, int) else int(str(value), 16))


def write_to_device(port, code):
    """Run MicroPython code on a board through mpremote: from a script in a
    private temporary folder, not on mpremote's command line, which any
    process on the host may read (the code carries credentials)."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "write.py"
        script.write_text(code)
        proc = subprocess.run(mpremote() + ["connect", port, "run", str(script)],
                              capture_output=True, text=True, timeout=60)
    if proc.returncode:
        # one line: the board's exception (its traceback names no source line)
        said = (proc.stderr.strip() or proc.stdout.strip() or "failed").splitlines()[-1]
        raise ToolError(f"mpremote on {port}: {said}")


def imp(args):
    # an empty body asks for a new plan; the Basic credential is "<api key>:"
    body = {"type": "production_token", "plan_id": canonical(args.plan_id)} \
        if args.plan_id else None
    key = base64.b64encode(args.api_key.encode() + b":").decode()
    _, doc = request(args, "POST", "/v5/enroll", body, {"Authorization": f"Basic {key}"})
    plan, token = canonical(doc["plan_id"]), canonical(doc["token_id"])
    if args.port:
        # (the store where the board's runtime reads it: its board.py says)
        write_to_device(args.port, "import board\nfrom onboard.store import Store\n"
                        "from onboard.clouds import imp\n"
                        f"imp.set_enrol_tokens(Store(board.store_path()), {plan!r}, {token!r})")
        show({"plan_id": plan, "written_to": args.port})
    else:
        show({"plan_id": plan, "token_id": token})


def blynk(args):
    auth = {"Authorization": f"Bearer {args.token}"}
    base = "/api/v1/organization/device/provision"
    if args.action == "provision-token":
        _, doc = request(args, "POST", base + "/token", {"orgId": args.org, "ownerId": args.owner},
                         auth)
    elif args.action == "reconfigure":
        _, doc = request(args, "POST", base + "/reconfigure", {"deviceId": args.device}, auth)
    else:
        _, doc = request(args, "POST", base + "/reprovision/token", {"deviceId": args.device},
                         auth)
    show(doc)


def spokezone(args):
    if args.action == "renew":
        status, doc = request(args, "POST", "/loginDevice",
                              {"token": args.token, "cpu_id": args.cpu_id, "uuid": args.uuid})
        show({"renewed": status == 201, **(doc if status == 201 else {})})
    else:
        body = {"cpuId": args.cpu_id} if args.cpu_id else None
        _, doc = request(args, "GET", f"/api/v2/devices/{args.device}/secrets", body,
                         {"x-access-token": args.access_token})
        show(doc)


def authorization_code(api, token, client_id, ca=None, timeout=10, device_id=None):
    """The code a plgd hub's /authorize gives (in its redirect's Location, which
    a user's browser would follow), for the hub's API at api, authorized by
    token; ToolError when none comes."""
    import http.client
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    url = urllib.parse.urlsplit(api)
    query = {"response_type": "code", "client_id": client_id,
             "redirect_uri": "http://localhost/callback", "state": "onboard"}
    if device_id:
        query["device_id"] = device_id
    query = urllib.parse.urlencode(query)
    conn = http.client.HTTPSConnection(url.hostname, url.port or 443, context=ctx,
                                       timeout=timeout)
    try:
        conn.request("GET", f"{url.path.rstrip('/')}/authorize?{query}",
                     headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        location = resp.getheader("Location") or ""
    except OSError as e:
        raise ToolError(f"{api}: {e}") from None
    finally:
        conn.close()
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query)).get("code")
    if resp.status != 302 or not code:
        raise ToolError(f"authorize: {resp.status}: no code")
    return code


def plgd(args):
    """Get an authorization code for a device and print its coapcloudconf values."""
    code = authorization_code(args.api, args.token, args.client_id, args.ca, args.timeout,
                              args.device_id)
    show({"apn": "plgd", "cis": args.cis, "sid": args.sid, "at": code})


def att(args):
    if args.refresh_token:
        _, doc = request(args, "POST", "/login", {"grant_type": "refresh_token",
                                                  "refresh_token": args.refresh_token,
                                                  "client_id": args.client_id}, form=True)
        show(doc)
        return
    _, first = request(args, "POST", "/login", {"grant_type": "password",
                                                "username": args.username,
                                                "password": args.password,
                                                "client_id": args.client_id}, form=True)
    _, doc = request(args, "POST", "/login", {"grant_type": "mfa", "client_id": args.client_id,
                                              "mfa_uid": first["MfaUid"],
                                              "user_id": first["UserId"], "code": args.code},
                     form=True)
    show(doc)


def add_parsers(sub):
    def common(p, api):
        p.add_argument("--api", default=api, help=f"the cloud's API base URL (default {api})")
        p.add_argument("--ca", help="CA file to verify the API with (cloudsim's ca.pem)")
        p.add_argument("--timeout", type=float, default=15)

    p = sub.add_parser("imp", help="Electric Imp enrolment tokens").add_subparsers(
        dest="action", required=True).add_parser("enroll", help="request plan ID and token")
    common(p, "https://api.electricimp.com")
    p.add_argument("--api-key", required=True)
    p.add_argument("--plan-id", help="reuse this plan ID (same agent)")
    p.add_argument("--port", help="write the pair to the board on this serial port (mpremote)")

    b = sub.add_parser("blynk", help="Blynk device provisioning").add_subparsers(
        dest="action", required=True)
    for name in ("provision-token", "reconfigure", "reprovision"):
        p = b.add_parser(name)
        common(p, "https://blynk.cloud")
        p.add_argument("--token", required=True, help="platform Bearer token")
        if name == "provision-token":
            p.add_argument("--org", type=int, required=True)
            p.add_argument("--owner", type=int, required=True)
        else:
            p.add_argument("--device", type=int, required=True)

    s = sub.add_parser("spokezone", help="Spoke Zone device tokens").add_subparsers(
        dest="action", required=True)
    p = s.add_parser("renew", help="POST /loginDevice")
    common(p, "https://api.spoke.zone")
    p.add_argument("--token", required=True)
    p.add_argument("--cpu-id", required=True)
    p.add_argument("--uuid", required=True)
    p = s.add_parser("secrets", help="GET /api/v2/devices/:id/secrets")
    common(p, "https://api.spoke.zone")
    p.add_argument("--device", required=True)
    p.add_argument("--access-token", required=True, help="a user token")
    p.add_argument("--cpu-id", help="required below the super role")

    p = sub.add_parser("plgd", help="plgd device onboarding").add_subparsers(
        dest="action", required=True).add_parser("onboard", help="coapcloudconf for a device")
    common(p, "https://auth.plgd.cloud")
    p.add_argument("--token", required=True, help="the portal user's Bearer token")
    p.add_argument("--device-id", help="(optional: a code is the user's, for any device)")
    p.add_argument("--client-id", default="onboard-device")
    p.add_argument("--cis", default="coaps+tcp://try.plgd.cloud:5684",
                   help="the CoAP gateway (cloudsim's: the ready line's coaps)")
    p.add_argument("--sid", default="adebc667-1f2b-41e3-bf5c-6d6eabc68cc6")

    p = sub.add_parser("att", help="AllThingsTalk user login").add_subparsers(
        dest="action", required=True).add_parser("login", help="password + MFA, or refresh")
    common(p, "https://api.allthingstalk.io")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--code", help="the MFA code from the authenticator app")
    p.add_argument("--refresh-token")
    p.add_argument("--client-id", default="web")


COMMANDS = {"imp": imp, "blynk": blynk, "spokezone": spokezone, "plgd": plgd, "att": att}
