# What a frozen onboard firmware contains: the port's own modules, onboard's
# components for the product's clouds (manifests/onboard-*/manifest.py) and
# the firmware's main.py. A board's manifest includes this file and adds its
# board.py. Paths are relative to this file.
#
# The clouds: include("../../firmware/manifest.py", clouds=("blynk",)) from a
# board's manifest, or ONBOARD_CLOUDS=blynk,spokezone in the environment
# (`make firmware CLOUDS=blynk`); neither: every cloud.
import os

options.defaults(clouds=None)
include("$(PORT_DIR)/boards/manifest.py")
add_library("onboard", "../manifests")
clouds = options.clouds or [c for c in os.getenv("ONBOARD_CLOUDS", "").split(",") if c]
if clouds:
    for cloud in clouds:
        require("onboard-" + cloud, library="onboard")
else:
    require("onboard", library="onboard")
module("main.py", opt=3)
