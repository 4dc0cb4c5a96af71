# What every onboard product needs whatever its cloud: the core, net and
# setup components. Each cloud's manifest (onboard-blynk, ...) requires it.
metadata(description="onboard's core, net and setup components", version="0.1.0")

add_library("onboard", "..")
for component in ("core", "net", "setup"):
    require("onboard-" + component, library="onboard")
