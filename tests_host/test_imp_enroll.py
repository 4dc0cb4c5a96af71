"""Electric Imp: enrol against cloudsim from the device's own code, tokens as
JSON numbers above 2**53 included, then the imp-style API on the store."""

import base64
import json

ENROLL = """
import json
from onboard import http
from onboard.clouds import imp
from onboard.store import Store
s = Store("onboard.json")
r = http.post(%(url)r, json=%(body)s, headers={"Authorization": %(auth)r}, ca=%(ca)r)
doc = r.json()
imp.set_enrol_tokens(s, doc["plan_id"], doc["token_id"])
print(json.dumps({"status": r.status_code, "enrol": Store("onboard.json").get("enrol"),
                  "raw_types": [type(doc["plan_id"]).__name__, type(doc["token_id"]).__name__]}))
"""


def enroll(mpy, sim, body=None):
    code = ENROLL % {"url": f"https://127.0.0.1:{sim.https_port}/imp/v5/enroll",
                     "body": json.dumps(body or {"type": "production_token"}),
                     "auth": "Basic " + base64.b64encode(sim.admin_token.encode()).decode(),
                     "ca": str(sim.dir / "ca.pem")}
    return json.loads(mpy.run(code).lines[-1])


def test_enroll_then_set_enrol_tokens_stores_canonical_hex(mpy, cloudsim):
    out = enroll(mpy, cloudsim)
    issued = cloudsim.clouds["imp"].enrolments[-1]
    assert out["status"] == 201
    assert out["enrol"] == {"plan_id": issued[0], "token": issued[1]}


def test_tokens_sent_as_json_numbers_above_2_53_are_stored_exactly(mpy, cloudsim):
    cloudsim.faults.add({"path": "/imp/v5/enroll", "kind": "numbers"})
    out = enroll(mpy, cloudsim)
    issued = cloudsim.clouds["imp"].enrolments[-1]
    assert out["raw_types"] == ["int", "int"]
    assert out["enrol"] == {"plan_id": issued[0], "token": issued[1]}
    assert int(issued[0], 16) > 2**53 and int(issued[1], 16) > 2**53


def test_plan_id_reuse_returns_the_same_plan_id(mpy, cloudsim):
    first = enroll(mpy, cloudsim)
    again = enroll(mpy, cloudsim, {"type": "production_token",
                                   "plan_id": first["enrol"]["plan_id"]})
    assert again["enrol"]["plan_id"] == first["enrol"]["plan_id"]
    assert again["enrol"]["token"] != first["enrol"]["token"]
