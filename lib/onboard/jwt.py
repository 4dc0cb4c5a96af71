# Reading, not verifying, the claims of a JWT: the device only needs to know
# what the cloud put in its own token (expiry, device id, MQTT prefix); the
# cloud verifies the signature. Errors name the field, never the token.
from binascii import a2b_base64


def claims(token, field="token"):
    """The payload of a JWT as a dict; ValueError when it is not one."""
    parts = token.split(".") if isinstance(token, str) else ()
    if len(parts) != 3 or len(parts[1]) > 2048:
        raise ValueError("%s: not a JWT" % field)
    body = parts[1].replace("-", "+").replace("_", "/")
    try:
        import json

        doc = json.loads(a2b_base64(body + "=" * (-len(body) % 4)))
    except (ValueError, UnicodeError):
        raise ValueError("%s: not a JWT" % field) from None
    if not isinstance(doc, dict):
        raise ValueError("%s: not a JWT" % field)
    return doc
