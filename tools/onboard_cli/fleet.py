"""`onboard fleet --devices N`: N simulated Blynk devices against one cloudsim,
each provisioned through its own portal as a phone app would. Prints the
time to online (min, median, p95, max), retries and failures, then one
JSON line with the same figures."""

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from .paths import ToolError
from .sim import call, portal_config
from .simdevice import Device


def provision_one(sim, prov, folder, results, index, timeout):
    config = {"profile": "blynk", "api": f"https://127.0.0.1:{sim.https_port}/blynk",
              "host": "127.0.0.1", "port": sim.front.tls_port, "ca": str(sim.dir / "ca.pem"),
              "time": sim.time_config(),
              "vendor": "Acme", "name": f"Fleet{index:03d}"}
    folder.mkdir()
    start = time.monotonic()
    device = Device(folder, config=config)
    result = {"online": None, "error": None, "setups": 0, "retries": 0}
    results[index] = result
    try:
        url = device.wait_state("WAIT_CONFIG", timeout)["portal"]
        portal_config(url, {"ssid": "home", "pass": "correct horse", "blynk": prov["token"]})
        device.wait_state("RUNNING", timeout)
        result["online"] = time.monotonic() - start
    except Exception as e:  # noqa: BLE001  one device's failure is reported, not fatal
        result["error"] = f"{type(e).__name__}: {str(e).split(';')[0]}"
    finally:
        result["setups"] = sum(1 for e in device.events if e["state"] == "WAIT_CONFIG")
        result["retries"] = sum(1 for e in device.events if "retry_in" in e)
        device.stop()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main(args):
    from cloudsim.app import Cloudsim
    from cloudsim.broker import BrokerError

    if args.devices < 1:
        raise ToolError("--devices must be at least 1")
    with tempfile.TemporaryDirectory(prefix="onboard-fleet-") as tmp:
        try:
            sim = Cloudsim(Path(tmp) / "cloudsim", log=lambda line: None).start()
        except BrokerError as e:
            raise ToolError(str(e)) from None
        results = {i: {"online": None, "error": "not started", "setups": 0, "retries": 0}
                   for i in range(args.devices)}
        threads = []
        try:
            # tokens first, as an operator would make them, then all devices at once
            tokens = [call(sim, "POST", "/blynk/api/v1/organization/device/provision/token",
                           {"orgId": 1, "ownerId": 1},
                           {"Authorization": f"Bearer {sim.admin_token}"})
                      for _ in range(args.devices)]
            for i in range(args.devices):
                t = threading.Thread(target=provision_one,
                                     args=(sim, tokens[i], Path(tmp) / f"d{i:03d}", results, i,
                                           args.timeout))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
        finally:
            sim.stop()
    times = [r["online"] for r in results.values() if r["online"] is not None]
    summary = {
        "devices": args.devices, "online": len(times),
        "failures": sum(1 for r in results.values() if r["online"] is None),
        "retries": sum(r["retries"] for r in results.values()),
        "setup_twice": sum(1 for r in results.values() if r["setups"] > 1),
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
        if r["error"]:
            print(f"device {i}: {r['error']}")
    print(json.dumps(summary))
    return 0 if summary["online"] == args.devices else 1
