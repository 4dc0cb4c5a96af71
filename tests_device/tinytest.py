# A tiny test helper for MicroPython scripts: run on a board with mpremote
# and on the Unix port. Ends with the line "N passed, N failed".
import sys

_passed = 0
_failed = 0


def test(fn):
    """Decorator: run fn now, count it, print its outcome."""
    global _passed, _failed
    try:
        fn()
    except Exception as e:  # a failing test must not stop the others
        _failed += 1
        print("FAIL", fn.__name__)
        sys.print_exception(e)
    else:
        _passed += 1
        print("ok  ", fn.__name__)
    return fn


def raises(exc, fn, *args, **kw):
    """Call fn and return the exception of type exc it raised; fail if none."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s did not raise %s" % (fn.__name__, exc.__name__))


def summary():
    print("%d passed, %d failed" % (_passed, _failed))
    if _failed:
        sys.exit(1)
