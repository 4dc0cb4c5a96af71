# The portal answers on the device itself: board_info, a captive probe and a
# refused /config, through a socket from the same event loop.
import asyncio
import json
import random
import time

from tinytest import summary, test

from onboard.portal import Portal

PORT = None  # a free one, found by starting the portal (MicroPython has no getsockname)
applied = []
replies = {}


def info():
    return {"board": "smoke", "last_error": 0}


def apply(fields):
    if not fields.get("ssid"):
        raise ValueError("ssid: required")
    applied.append(fields)


async def ask(path):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    writer.write(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
    await writer.drain()
    data = b""
    while True:
        part = await reader.read(512)
        if not part:
            break
        data += part
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head, body


async def start_portal():
    global PORT
    random.seed(time.ticks_us())
    for _ in range(50):
        PORT = 20000 + random.getrandbits(14)
        try:
            return await Portal(info, lambda: [], apply, lambda: None, host="127.0.0.1",
                                port=PORT).start()
        except OSError:  # in use: another one
            continue
    raise OSError("no free port")


async def main():
    portal = await start_portal()
    for path in ("/board_info.json", "/generate_204", "/config?pass=x"):
        replies[path] = await ask(path)
    portal.stop()


asyncio.run(main())


@test
def board_info_is_served():
    status, _, body = replies["/board_info.json"]
    assert status == 200 and json.loads(body)["board"] == "smoke"


@test
def captive_probe_is_redirected():
    status, head, _ = replies["/generate_204"]
    assert status == 302 and b"Location: http://127.0.0.1:%d/" % PORT in head


@test
def invalid_config_is_edgents_500_and_stores_nothing():
    status, _, body = replies["/config?pass=x"]
    assert status == 500 and json.loads(body)["msg"] == "ssid: required"
    assert applied == []


summary()
