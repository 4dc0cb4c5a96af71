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


def station():
    """The station interface, its radio started afresh (off, then on), as a
    power-on leaves it. A soft reset leaves the radio as the program before
    left it: joined, or still joining (then a scan finds nothing and a
    connect() raises "Wifi Internal Error"). On the emulated ESP32 the restart
    also revives the emulator's Wi-Fi receive, which stops for good when the
    board's CPUs get no time for some seconds while joined (seen on busy
    hosts as mpremote copied files): its model hands frames to a list of
    buffers it never goes back to once at the end, so the board hears no
    network until the radio restarts or the board reboots."""
    import network

    sta = network.WLAN(network.STA_IF)
    sta.active(False)
    sta.active(True)
    return sta


def summary():
    print("%d passed, %d failed" % (_passed, _failed))
    if _failed:
        sys.exit(1)
