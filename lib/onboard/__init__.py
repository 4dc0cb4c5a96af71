# onboard: from "just flashed" to "online in its IoT cloud". See README.md.
__version__ = "0.1.0"

