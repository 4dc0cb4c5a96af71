# A Spoke Zone product's components: onboard-base (core, net, setup) and this
# cloud's profile. firmware/manifest.py requires it for CLOUD=spokezone.
metadata(description="onboard for Spoke Zone", version="0.1.0")

add_library("onboard", "..")
require("onboard-base", library="onboard")

package("onboard", files=("clouds/spokezone.py", "jwt.py"), base_path="../../lib", opt=3)
