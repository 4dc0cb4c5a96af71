# The Unix board is not frozen: `onboard device run` loads lib/ and this folder.
module("board.py")
module("network.py")
