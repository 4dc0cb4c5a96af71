# A plgd (OCF over CoAP) product's components: onboard-base (core, net, setup) and this
# cloud's profile. firmware/manifest.py requires it for CLOUD=plgd.
metadata(description="onboard for plgd (OCF over CoAP)", version="0.1.0")

add_library("onboard", "..")
require("onboard-base", library="onboard")

package("onboard", files=("clouds/plgd.py", "coap.py", "cbor.py", "ocf.py", "ocfres.py"),
        base_path="../../lib", opt=3)
