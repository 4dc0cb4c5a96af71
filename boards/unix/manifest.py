# The Unix board is not frozen: `onboard device run` loads lib/ and this folder.
module("board.py", opt=3)
module("press.py", opt=3)
module("air.py", opt=3)
module("network.py", opt=3)
