# For scripts that ask a lib/ function many questions: one line of JSON per
# question, with what the function returned or the ValueError it raised.
import json


def answer(name, fn):
    try:
        out, error = fn(), None
    except ValueError as e:
        out, error = None, str(e)
    print(json.dumps({"case": name, "out": out, "error": error}))
