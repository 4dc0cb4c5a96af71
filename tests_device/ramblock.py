# An in-RAM block device with a power-cut switch, for os.VfsLfs2 / os.VfsFat.
# Every erase or program is one "write"; after cut_after() the device fails
# every further write, as flash does when the power goes. Used by the
# device tests and by the host tests' power-cut sweeps.
import os

_EIO = -5


class RAMBlockDev:
    def __init__(self, block_size=512, blocks=128, image=None):
        self.block_size = block_size
        self.blocks = blocks
        self.data = bytearray(image) if image else bytearray(block_size * blocks)
        self.writes = 0  # writes that reached the medium
        self.attempts = 0  # writes asked for, including failed ones
        self._budget = -1  # writes left before the cut; -1: no cut

    def cut_after(self, n):
        """Let n more writes through, then fail every write."""
        self._budget = n

    def restore_power(self):
        self._budget = -1

    def _allow(self):
        self.attempts += 1
        if self._budget == 0:
            return False
        if self._budget > 0:
            self._budget -= 1
        self.writes += 1
        return True

    def readblocks(self, block, buf, offset=0):
        a = block * self.block_size + offset
        buf[:] = self.data[a : a + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        if not self._allow():
            return _EIO
        a = block * self.block_size + (offset or 0)
        self.data[a : a + len(buf)] = buf
        return 0

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase
            return 0 if self._allow() else _EIO
        return 0


def lfs(blocks=32, block_size=512):
    dev = RAMBlockDev(block_size, blocks)
    os.VfsLfs2.mkfs(dev)
    return dev


def fat(blocks=128):
    dev = RAMBlockDev(512, blocks)
    os.VfsFat.mkfs(dev)
    return dev


def mount(dev, kind, where):
    """Mount dev (kind "lfs" or "fat") at where; returns where."""
    vfs = os.VfsLfs2(dev) if kind == "lfs" else os.VfsFat(dev)
    os.mount(vfs, where)
    return where


def umount(where):
    try:
        os.umount(where)
    except OSError:
        pass
