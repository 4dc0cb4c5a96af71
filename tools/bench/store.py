"""Figures of the credential store (issue: foundation)."""

from .measure import PATH, allocated, mpy_size, run_micropython, smallest_heap, workdir

# A realistic record: two networks, enrolment, a JWT-sized access token.
PREPARE = """
from onboard.store import Store
s = Store("onboard.json")
s.put("wifi", networks=[{"ssid": "home-network", "password": "correct horse battery"},
                        {"ssid": "office", "password": "another-password-1"}])
s.put("enrol", plan_id="0x1a2b3c4d5e6f7a8b", token="0x0102030405060708")
s.put("cloud", device_id="dev-42", host="127.0.0.1", access_token="x" * 400,
      refresh_token="r" * 64, expires_in=3600)
s.put("state", last_error=0, boots=12)
s.put("meta", uid="a4cf12345678", created=1795300000)
"""

LOAD = 'from onboard.store import Store\nStore("onboard.json").load()'
PUT = 'from onboard.store import Store\nStore("onboard.json").put("state", boots=13)'


def figures():
    rows = []
    for module in ("store", "hex64", "clouds.imp"):
        rows.append(("store", f"{module}.mpy", mpy_size(module), "B", ""))
    with workdir() as d:
        run_micropython(PREPARE, PATH, cwd=d).check_returncode()
        rows.append(("store", "load: allocated (mem_peak)", allocated(LOAD, cwd=d), "B", ""))
        rows.append(("store", "put: allocated (mem_peak)", allocated(PUT, cwd=d), "B", ""))
        rows.append(("store", "load: smallest -X heapsize", smallest_heap(LOAD, cwd=d), "B", ""))
        rows.append(("store", "put: smallest -X heapsize", smallest_heap(PUT, cwd=d), "B", ""))
    rows.append(("store", "interpreter alone: smallest -X heapsize",
                 smallest_heap("pass"), "B", "baseline"))
    return rows
