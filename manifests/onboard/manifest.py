# All of onboard: every cloud profile (the default of firmware/manifest.py,
# `onboard deploy` and `make romfs`).
metadata(description="onboard: every component and cloud profile", version="0.1.0")

add_library("onboard", "..")
for cloud in ("blynk", "spokezone", "allthingstalk", "imp", "plgd"):
    require("onboard-" + cloud, library="onboard")
require("onboard-clients", library="onboard")  # the blocking http and mqtt
