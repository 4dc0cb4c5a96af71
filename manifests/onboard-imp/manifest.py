# A Electric Imp product's components: onboard-base (core, net, setup) and this
# cloud's profile. firmware/manifest.py requires it for CLOUD=imp.
metadata(description="onboard for Electric Imp", version="0.1.0")

add_library("onboard", "..")
require("onboard-base", library="onboard")

package("onboard", files=("clouds/imp.py", "hex64.py"), base_path="../../lib", opt=3)
