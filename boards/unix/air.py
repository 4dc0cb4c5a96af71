# The access point as a phone scanning the air would see it, for the tests:
# while it is up, the file $ONBOARD_AIR holds "<authmode> <essid>" (0 open,
# 3 WPA2-PSK), read back from the stand-in radio; once it is down, no file.
# Loaded only when that variable is set (`Device(air=True)`), so neither
# `onboard sim` nor the heap figures hold it.
import network
import os


def show():
    ap = network.WLAN(network.AP_IF)
    path = os.getenv("ONBOARD_AIR")
    if ap.active():
        with open(path + ".tmp", "w") as f:
            f.write("%d %s" % (ap.config("authmode"), ap.config("essid")))
        os.rename(path + ".tmp", path)  # (a reader never sees half of it)
    else:
        try:
            os.remove(path)
        except OSError:
            pass
