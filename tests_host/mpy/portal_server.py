# A portal on its own, for the host tests: stub callbacks that print what
# arrives ("@applied {json}", "@reset", "@reboot") and a fixed board_info / scan.
# argv: port [pop] [app-only]  (app-only: portal.captive off)
# stdin: "advance <ms>" moves the portal's clock forward ("@advanced" once done),
# so a test can pass a 60 s lock without waiting for it.
import asyncio
import json
import sys
import time


class _Clock:
    """The time module as the portal sees it: ticks_ms runs `ahead` ms ahead."""
    ahead = 0

    def __getattr__(self, name):
        return getattr(time, name)

    def ticks_ms(self):
        return time.ticks_add(time.ticks_ms(), self.ahead)


_clock = _Clock()
sys.modules["time"] = _clock  # before the portal's own `import time`
from onboard import log  # noqa: E402
from onboard.portal import Portal  # noqa: E402

sys.modules["time"] = time

log.level = log.WARN


def apply(fields):
    if fields.get("ssid") == "refuse-me":
        raise ValueError("ssid: refused by the test")
    if fields.get("ssid") == "crash-me":
        raise RuntimeError("a bug in apply")  # what the portal must survive
    if fields.get("ssid") == "no-memory":
        raise MemoryError  # a store write in a heap too full or fragmented
    if fields.get("ssid") == "slow-flash":
        time.sleep_ms(6000)  # a store write slower than the portal's request bound (5 s)
    print("@applied " + json.dumps(fields))


def reset():
    print("@reset")


def reboot():
    print("@reboot")


def info():
    print("@info")  # the tests' sync mark: everything printed before it is in the pipe
    # the portal's count of requests (this one included) and its idle time, for the tests
    return {"board": "Sensor", "last_error": 0, "served": _portal[0].served,
            "idle_ms": _portal[0].idle_ms()}


def scan():
    return [{"ssid": "home", "bssid": "aa:bb:cc:00:00:01", "rssi": -50, "sec": "WPA2",
             "ch": 6}, {"ssid": '"><script>alert(1)</script>', "bssid": "aa:bb:cc:00:00:09",
                        "rssi": -80, "sec": "OPEN", "ch": 1}]


_portal = [None]


async def main():
    port = int(sys.argv[1])
    pop = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    portal = Portal(info, scan, apply, reset, reboot=reboot, host="127.0.0.1", port=port, pop=pop,
                    fields=(("blynk", "Blynk auth token", True),),
                    captive=sys.argv[3:] != ["app-only"])
    _portal[0] = portal
    await portal.start()
    print("@ready")
    commands = asyncio.StreamReader(sys.stdin)
    while True:
        line = (await commands.readline()).decode().split()
        if not line:
            await asyncio.sleep(3600)  # stdin closed: serve on
        elif line[0] == "advance":
            _clock.ahead += int(line[1])
            print("@advanced")


asyncio.run(main())
