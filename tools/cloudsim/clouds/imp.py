"""Electric Imp: POST /imp/v5/enroll (Basic `<api key>:`, or the key alone)
-> 201 {plan_id, token_id}; an empty body asks for a new plan."""

import base64
import secrets

from ..web import HttpError


def _hex64():
    # the top bit set: every value is above 2**53, where JSON numbers lose digits
    return "0x%016x" % (secrets.randbits(63) | 1 << 63)


class Imp:
    def __init__(self, sim):
        self.sim = sim
        self.plans = set()
        self.enrolments = []  # (plan_id, token_id) issued
        self.seen = []  # per accepted request: {"colon": key sent as "<key>:", "empty": no body}

    def routes(self, r):
        r.add("POST", "/imp/v5/enroll", self.enroll)

    def enroll(self, req):
        self.sim.require_basic(req)
        empty = not (req.body or b"").strip()
        doc = {} if empty else req.json()
        if doc.get("type", "production_token") != "production_token":
            raise HttpError(400, 'type: must be "production_token"')
        plan = doc.get("plan_id")
        if plan is not None:
            try:
                plan = "0x%016x" % int(str(plan), 16)
            except ValueError:
                raise HttpError(400, "plan_id: not a hex plan ID") from None
            if plan not in self.plans:
                raise HttpError(400, "plan_id: unknown plan")
        else:
            plan = _hex64()
            self.plans.add(plan)
        token = _hex64()
        self.enrolments.append((plan, token))
        auth = req.headers.get("Authorization", "")[6:].strip()
        self.seen.append({"colon": base64.b64decode(auth).endswith(b":"), "empty": empty})
        # 201 also when an existing plan ID was passed, as the API documents
        return 201, {"plan_id": plan, "token_id": token}
