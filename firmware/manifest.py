# What a frozen onboard firmware contains: the port's own modules, onboard's
# library and the firmware's boot.py/main.py. A board's manifest includes this
# file and adds its board.py. Paths are relative to this file.
include("$(PORT_DIR)/boards/manifest.py")
package("onboard", base_path="../lib")
module("main.py")
