# The blocking clients for an application's own use: onboard.http (requests'
# interface) and onboard.mqtt (umqtt.simple's). The runtime does not use them
# (its asyncio clients are in onboard-net), so a product adds this component
# only when its own code calls them.
metadata(description="onboard clients: blocking http and mqtt", version="0.1.0")

add_library("onboard", "..")
require("onboard-net", library="onboard")

package("onboard", files=("http.py", "mqtt.py"), base_path="../../lib", opt=3)
