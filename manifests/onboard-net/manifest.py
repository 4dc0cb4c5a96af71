# onboard's network as the runtime uses it: sockets and TLS contexts, errors,
# the CA loader and the device certificate's, the asyncio HTTP and MQTT
# clients (and what they share with the blocking ones of onboard-clients), the
# cloud profiles' HTTPS steps and the time sync (clock asks it before the
# first verified TLS connection).
metadata(description="onboard net: net, errors, ca, cloudtls, ahttp, cloudapi, amqtt, time sync",
         version="0.1.0")

add_library("onboard", "..")
require("onboard-core", library="onboard")

package(
    "onboard",
    files=(
        "errors.py",
        "net.py",
        "ca.py",
        "cloudtls.py",
        "httpmsg.py",
        "ahttp.py",
        "cloudapi.py",
        "redirect.py",
        "chunked.py",
        "mqttbase.py",
        "amqtt.py",
        "timesync.py",
        "httpdate.py",
    ),
    base_path="../../lib", opt=3,
)
