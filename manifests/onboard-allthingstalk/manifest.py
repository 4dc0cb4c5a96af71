# A AllThingsTalk product's components: onboard-base (core, net, setup) and this
# cloud's profile. firmware/manifest.py requires it for CLOUD=allthingstalk.
metadata(description="onboard for AllThingsTalk", version="0.1.0")

add_library("onboard", "..")
require("onboard-base", library="onboard")

package("onboard", files=("clouds/allthingstalk.py", "clouds/allthingstalk_assets.py"),
        base_path="../../lib", opt=3)
