# Logging that never prints a secret.
#
# Secret values are registered with secret() (the store does this for every
# field whose name marks it as one) and masked in every line; dict arguments
# have the values of secret-named keys masked as well. Every line ends with a
# newline, because Improv clients only look for packets at a line start.
import sys
from micropython import const

DEBUG = const(10)
INFO = const(20)
WARN = const(30)
ERROR = const(40)

_MAX_SECRETS = const(24)
_MIN_SECRET_LEN = const(3)
MASK = "***"

level = INFO
# Anything with write(str); runtime points this at the UART or a pty.
output = sys.stdout
_secrets = []


def is_secret_key(name):
    """True when a field of this name holds a credential."""
    n = name.lower()
    return (
        "pass" in n
        or "token" in n
        or "key" in n
        or "secret" in n
        or n in ("at", "pop", "blynk", "psk")
    )


def secret(value):
    """Register a value that must never be printed."""
    if not isinstance(value, str) or len(value) < _MIN_SECRET_LEN:
        return
    if value in _secrets:
        return
    if len(_secrets) >= _MAX_SECRETS:
        _secrets.pop(0)
    _secrets.append(value)


def forget_secrets():
    _secrets.clear()


def masked(obj):
    """A copy of obj safe to print: values of secret-named keys masked."""
    # (loops and map, not comprehensions: each of those is one more function
    # object in RAM while the module is loaded)
    if isinstance(obj, dict):
        d = {}
        for k, v in obj.items():
            d[k] = MASK if isinstance(k, str) and is_secret_key(k) else masked(v)
        return d
    if isinstance(obj, (list, tuple)):
        return list(map(masked, obj))
    return obj


def _emit(lvl, tag, msg, args):
    if lvl < level:
        return
    if args:
        try:
            msg = msg % tuple(map(masked, args))
        except (TypeError, ValueError):
            msg = "%s (bad log format)" % msg
    # the level's letter: D, I, W or E (lvl is one of the four, 10 to 40)
    line = "%s %s: %s" % ("DIWE"[lvl // 10 - 1], tag, msg)
    # every registered secret masked, longest first (one that contains another
    # is masked whole)
    for s in sorted(_secrets, key=len, reverse=True):
        if s in line:
            line = line.replace(s, MASK)
    output.write(line.replace("\n", " ") + "\n")


def debug(tag, msg, *args):
    _emit(DEBUG, tag, msg, args)


def info(tag, msg, *args):
    _emit(INFO, tag, msg, args)


def warn(tag, msg, *args):
    _emit(WARN, tag, msg, args)


def error(tag, msg, *args):
    _emit(ERROR, tag, msg, args)
