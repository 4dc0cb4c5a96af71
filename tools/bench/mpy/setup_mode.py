# MicroPython side of the setup-mode benchmarks: a portal and a captive DNS
# with stub callbacks, the store loaded as on a device. A line "heap" on
# stdin prints the live heap after a collection; "stats" prints counters.
# argv: portal_port dns_port
import asyncio
import gc
import json
import sys

import onboard.store  # noqa: F401  (a device holds the store in setup mode)
from onboard import log
from onboard.dns import CaptiveDNS
from onboard.portal import Portal

log.level = log.ERROR
applied = [0]


def apply(fields):
    if len(fields.get("ssid", "")) > 32:
        raise ValueError("ssid: too long")
    applied[0] += 1


def info():
    return {"board": "Sensor", "tmpl_id": "TMPL1", "fw_type": "Sensor", "fw_ver": "1.0.0",
            "ssid": "Acme Sensor-0001", "bssid": "02:00:00:00:00:02", "mac": "02:00:00:00:00:01",
            "last_error": 0, "wifi_scan": True, "static_ip": False, "vendor": "Acme",
            "uid": "020000000001"}


def scan():
    return [{"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -50, "sec": "WPA2",
             "ch": 6}]


async def control(portal, dns):
    reader = asyncio.StreamReader(sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        if line.strip() == b"heap":
            gc.collect()
            print("HEAP", gc.mem_alloc())
        elif line.strip() == b"stats":
            print("STATS", json.dumps({"served": portal.served, "dns": dns.answered,
                                       "dropped": dns.dropped, "applied": applied[0],
                                       "active": portal.active}))


async def main():
    portal = await Portal(info, scan, apply, lambda: None, host="127.0.0.1",
                          port=int(sys.argv[1])).start()
    dns = CaptiveDNS("127.0.0.1", int(sys.argv[2]))
    asyncio.create_task(dns.run())
    await asyncio.sleep_ms(20)
    print("READY")
    await control(portal, dns)


asyncio.run(main())
