# A portal on its own, for the host tests: stub callbacks that print what
# arrives ("@applied {json}", "@reset") and a fixed board_info / scan.
# argv: port [pop] [app-only]  (app-only: portal.captive off)
import asyncio
import json
import sys
import time

from onboard import log
from onboard.portal import Portal

log.level = log.WARN


def apply(fields):
    if fields.get("ssid") == "refuse-me":
        raise ValueError("ssid: refused by the test")
    if fields.get("ssid") == "slow-flash":
        time.sleep_ms(6000)  # a store write slower than the portal's request bound (5 s)
    print("@applied " + json.dumps(fields))


def reset():
    print("@reset")


def info():
    print("@info")  # the tests' sync mark: everything printed before it is in the pipe
    return {"board": "Sensor", "last_error": 0}


def scan():
    return [{"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -50, "sec": "WPA2",
             "ch": 6}, {"ssid": "<script>alert(1)</script>", "bssid": "aa:bb:cc:00:00:09",
                        "rssi": -80, "sec": "OPEN", "ch": 1}]


async def main():
    port = int(sys.argv[1])
    pop = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    portal = Portal(info, scan, apply, reset, host="127.0.0.1", port=port, pop=pop,
                    fields=(("blynk", "Blynk auth token", True),),
                    captive=sys.argv[3:] != ["app-only"])
    await portal.start()
    print("@ready")
    while True:
        await asyncio.sleep(3600)


asyncio.run(main())
