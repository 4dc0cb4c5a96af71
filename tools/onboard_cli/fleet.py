"""`onboard fleet --devices N [--fault PATH:KIND[:COUNT]]...`: N simulated
Blynk devices against one cloudsim, each provisioned through its own portal
as a phone app would, while the cloud throws the faults asked for. Prints
each device's time to online next to its requests to the cloud, the time to
online (min, median, p95, max), retries and failures, the requests the
server saw on each fault's path, then one JSON line with the same figures.

A fault: PATH on cloudsim (e.g. /blynk/external/api/provision), KIND one of
NNN (answer with that HTTP status), 429=S (429 with Retry-After S seconds),
latency=S, drop, truncate, shape; COUNT how many requests get it (1)."""

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from .paths import ToolError
from .sim import call, portal_config
from .simdevice import Device

ACTIVATION = "/blynk/external/api/provision"


def parse_fault(text):
    """A --fault value as a cloudsim fault spec; ToolError naming the part."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0].startswith("/"):
        raise ToolError(f"--fault {text!r}: PATH:KIND[:COUNT], PATH starting with /")
    path, kind = parts[0], parts[1]
    try:
        count = int(parts[2]) if len(parts) == 3 else 1
        if not 1 <= count <= 100000:
            raise ValueError
    except ValueError:
        raise ToolError(f"--fault {text!r}: COUNT must be a whole number from 1") from None
    name, _, value = kind.partition("=")
    spec = {"path": path, "count": count}
    try:
        if name.isdigit() and not value and 400 <= int(name) <= 599:
            spec.update(kind="status", status=int(name))
        elif name == "429" or name == "retry_after":
            spec.update(kind="retry_after", seconds=int(value))
        elif name == "latency":
            spec.update(kind="latency", seconds=float(value))
        elif name in ("drop", "truncate", "shape") and not value:
            spec["kind"] = name
        else:
            raise ValueError
    except ValueError:
        raise ToolError(f"--fault {text!r}: KIND is NNN (an HTTP status 400-599), 429=S, "
                        "latency=S, drop, truncate or shape") from None
    return spec


def provision_one(sim, prov, folder, results, index, timeout):
    config = {"profile": "blynk", "api": f"https://127.0.0.1:{sim.https_port}/blynk",
              "host": "127.0.0.1", "port": sim.front.tls_port, "ca": str(sim.dir / "ca.pem"),
              "time": sim.time_config(),
              "vendor": "Acme", "name": f"Fleet{index:03d}",
              # the settings' trial lasts as long as the fleet waits for a step
              # (not Edgent's 50 s): with many devices on one host, a few slow
              # tries in the storm would end it, and the device is back in
              # setup mode because of the host, not the cloud
              "trial_s": max(50, int(timeout))}
    folder.mkdir()
    start = time.monotonic()
    device = Device(folder, config=config)
    result = {"online": None, "error": None, "setups": 0, "retries": 0, "retry_in": []}
    results[index] = result
    try:
        url = device.wait_state("WAIT_CONFIG", timeout)["portal"]
        portal_config(url, {"ssid": "home", "pass": "correct horse", "blynk": prov["token"]})
        device.wait_state("RUNNING", timeout)
        result["online"] = time.monotonic() - start
    except Exception as e:  # noqa: BLE001  one device's failure is reported, not fatal
        result["error"] = f"{type(e).__name__}: {str(e).split(';')[0]}"
        # what it went through, for the report: its states and its log's end
        result["trace"] = " > ".join(
            f"{x['state']}" + (f" ({x['last_error']})" if x.get("last_error") else "")
            for x in device.events) + "\n" + "\n".join(
            device.log_path.read_text().splitlines()[-12:])
    finally:
        result["setups"] = sum(1 for e in device.events if e["state"] == "WAIT_CONFIG")
        result["retry_in"] = [e["retry_in"] for e in device.events if "retry_in" in e]
        result["retries"] = len(result["retry_in"])
        device.stop()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main(args):
    from cloudsim.app import Cloudsim
    from cloudsim.broker import BrokerError

    if args.devices < 1:
        raise ToolError("--devices must be at least 1")
    faults = [parse_fault(f) for f in args.fault or ()]
    with tempfile.TemporaryDirectory(prefix="onboard-fleet-") as tmp:
        try:
            sim = Cloudsim(Path(tmp) / "cloudsim", log=lambda line: None).start()
        except BrokerError as e:
            raise ToolError(str(e)) from None
        results = {i: {"online": None, "error": "not started", "setups": 0, "retries": 0,
                       "retry_in": []} for i in range(args.devices)}
        seen = {}
        threads = []
        try:
            # tokens first, as an operator would make them, then all devices at once
            tokens = [call(sim, "POST", "/blynk/api/v1/organization/device/provision/token",
                           {"orgId": 1, "ownerId": 1},
                           {"Authorization": f"Bearer {sim.admin_token}"})
                      for _ in range(args.devices)]
            for spec in faults:
                sim.faults.add(spec)
            for i in range(args.devices):
                t = threading.Thread(target=provision_one,
                                     args=(sim, tokens[i], Path(tmp) / f"d{i:03d}", results, i,
                                           args.timeout))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            for path in sorted({f["path"] for f in faults} | {ACTIVATION}):
                seen[path] = len(sim.arrivals(path))
        finally:
            sim.stop()
    times = [r["online"] for r in results.values() if r["online"] is not None]
    summary = {
        "devices": args.devices, "online": len(times),
        "failures": sum(1 for r in results.values() if r["online"] is None),
        "retries": sum(r["retries"] for r in results.values()),
        "setup_twice": sum(1 for r in results.values() if r["setups"] > 1),
        "faults": faults,
        # attempts at the cloud: the first and one after each retry the device noted
        "requests": {str(i): r["retries"] + 1 for i, r in sorted(results.items())},
        "server_requests": seen,
        # every wait before a retry, as the devices noted them (Retry-After is a floor)
        "retry_in_s": sorted(round(x, 2) for r in results.values() for x in r["retry_in"]),
        "online_s": {"min": round(min(times), 2), "median": round(statistics.median(times), 2),
                     "p95": round(percentile(times, 95), 2), "max": round(max(times), 2)}
        if times else None,
    }
    print(f"{summary['online']}/{args.devices} online, {summary['failures']} failed, "
          f"{summary['retries']} retries, {summary['setup_twice']} needed setup mode twice")
    if times:
        t = summary["online_s"]
        print(f"time to online: min {t['min']} s, median {t['median']} s, p95 {t['p95']} s, "
              f"max {t['max']} s")
    for i, r in sorted(results.items()):
        online = f"online in {r['online']:.2f} s" if r["online"] is not None else "not online"
        print(f"device {i}: {online}, {r['retries'] + 1} requests ({r['retries']} retries)"
              + (f": {r['error']}" if r["error"] else ""))
        if r.get("trace"):
            print("  " + r["trace"].replace("\n", "\n  "))
    for path, n in seen.items():
        print(f"server: {n} requests on {path}")
    print(json.dumps(summary))
    return 0 if summary["online"] == args.devices else 1
