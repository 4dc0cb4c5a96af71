# onboard's setup mode: Wi-Fi station, the reconfigure portal, captive DNS
# and Improv Wi-Fi over serial.
metadata(description="onboard setup: wifi, portal, dns, improv", version="0.1.0")

add_library("onboard", "..")
require("onboard-core", library="onboard")

package(
    "onboard",
    files=(
        "wifi.py",
        "wifijoin.py",
        "portal.py",
        "page.py",
        "dns.py",
        "improv.py",
        "setupmode.py",
    ),
    base_path="../../lib", opt=3,
)
