# A Blynk product's components: onboard-base (core, net, setup) and this
# cloud's profile. firmware/manifest.py requires it for CLOUD=blynk.
metadata(description="onboard for Blynk", version="0.1.0")

add_library("onboard", "..")
require("onboard-base", library="onboard")

package("onboard", files=("clouds/blynk.py", "clouds/blynk_check.py", "clouds/blynk_online.py"),
        base_path="../../lib", opt=3)
