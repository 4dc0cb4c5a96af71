# The runtime's states (Blynk.Edgent's names) and every last_error code
# (DESIGN.md section 9), for applications: `from onboard.codes import RUNNING`.
# The library's own modules do not load it. Each folds the values it uses in
# as private constants (_RUNNING = const("RUNNING")), which cost no RAM once
# compiled, where this module and the names imported from it stayed loaded in
# every state; tests_host/test_memory checks that they are the values here.
from micropython import const

WAIT_CONFIG = "WAIT_CONFIG"
CONFIGURING = "CONFIGURING"
CONNECTING_NET = "CONNECTING_NET"
CONNECTING_CLOUD = "CONNECTING_CLOUD"
RUNNING = "RUNNING"
RESET_CONFIG = "RESET_CONFIG"
ERROR = "ERROR"

OK = const(0)
ERR_CONFIG = const(700)  # the configuration cannot be used
ERR_NETWORK = const(701)  # Wi-Fi failed or was lost
ERR_CLOUD = const(702)  # the cloud could not be reached or answered badly (transient)
ERR_TOKEN = const(703)  # the cloud refused the credentials
ERR_INTERNAL = const(704)  # a bug: the device reboots
ERR_DNS = const(710)  # a name lookup failed
ERR_TLS = const(711)  # the server's certificate was refused
ERR_NOT_FOUND = const(720)  # the network is not in range
ERR_WRONG_PASSWORD = const(722)
ERR_NO_IP = const(723)  # joined, but no address came
