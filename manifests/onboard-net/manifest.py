# onboard's network: sockets and TLS contexts, errors, the CA loader, the
# HTTP and MQTT clients and the time sync (clock asks it before the first
# verified TLS connection).
metadata(description="onboard net: net, errors, ca, http, ahttp, mqtt, timesync",
         version="0.1.0")

add_library("onboard", "..")
require("onboard-core", library="onboard")

package(
    "onboard",
    files=(
        "errors.py",
        "net.py",
        "ca.py",
        "http.py",
        "httpmsg.py",
        "ahttp.py",
        "redirect.py",
        "mqtt.py",
        "mqttbase.py",
        "amqtt.py",
        "timesync.py",
    ),
    base_path="../../lib",
)
