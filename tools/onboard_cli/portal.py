"""`onboard portal configure`: what a phone app does with a device in setup
mode (Blynk.Edgent's local API): read board_info and the scan, then send
/config."""

import json
import urllib.error
import urllib.parse
import urllib.request

from .paths import ToolError


def call(url, path, data=None, timeout=10):
    req = urllib.request.Request(urllib.parse.urljoin(url, path), data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read())
        except ValueError:
            return e.code, {"msg": e.reason}
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ToolError(f"{url}: {getattr(e, 'reason', e)}") from None


def main(args):
    url = args.url if args.url.endswith("/") else args.url + "/"
    _, info = call(url, "board_info.json")
    print(f"device: {info.get('board')} {info.get('fw_ver')} ({info.get('ssid')}), "
          f"last_error {info.get('last_error')}")
    _, nets = call(url, "wifi_scan.json")
    if args.ssid not in [n.get("ssid") for n in nets]:
        print(f"note: {args.ssid!r} is not in the device's scan")
    fields = {"ssid": args.ssid, "pass": args.password}
    if args.token:
        fields["blynk" if info.get("tmpl_id", "").startswith("TMPL") else "token"] = args.token
    for extra in args.field or []:
        name, sep, value = extra.partition("=")
        if not sep:
            raise ToolError(f"--field {extra!r}: use name=value")
        fields[name] = value
    status, reply = call(url, "config", urllib.parse.urlencode(fields).encode())
    if status != 200:
        raise ToolError(f"device refused: {reply.get('msg')}")
    print(reply.get("msg"))
