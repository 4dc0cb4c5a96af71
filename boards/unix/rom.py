# The Unix board's ROMFS partition. `onboard device run --romfs IMAGE` runs
#   micropython -c LAUNCH
# where LAUNCH (onboard_cli.device.rom_launch) imports this module, mounts
# IMAGE (`make romfs`) at /rom with vfs.VfsRom, as a board's firmware mounts
# its ROMFS partition, lets go of this module and runs MAIN (firmware/main.py).
#
# On a board the image is in flash and its .mpy code runs in place: none of
# it is on the heap. Here it must not be either, or the heap figures would
# count it; nor may this module's code stay (a board's firmware mounts its
# partition in C): nothing of it is referenced once boot() returns. This port
# has no ffi (no mmap or malloc), so the image goes into memory the process
# owns outside the GC heap: the lower end of a parked thread's stack (the
# thread waits at the top of it forever; the GC scans a thread's stack only
# from where it runs up), found by the new mapping the thread's start adds
# to /proc/self/maps.
import _thread
import sys

import uctypes
import vfs

HEADER = b"\xd2\xcd\x31"  # a ROMFS image starts with this
MARGIN = 65536  # the parked thread's room at the top of its stack
PAGE = 4096


def _mappings():
    found = set()
    with open("/proc/self/maps", "rb") as f:
        for line in f:
            part = line.split()
            if part[1] == b"rw-p" and len(part) == 5:  # anonymous, read-write
                low, high = part[0].split(b"-")
                found.add((int(low, 16), int(high, 16)))
    return found


def _outside_heap(size):
    """size bytes of memory outside the GC heap, as a bytearray_at."""
    room = (size + PAGE - 1) // PAGE * PAGE
    before = _mappings()
    hold = _thread.allocate_lock()
    hold.acquire()
    _thread.stack_size(room + MARGIN)
    # the thread waits on the lock, never released: the stack below stays
    # ours. It runs a builtin, and is started with globals of its own: a
    # thread keeps its function and the globals it was started from, which
    # here would keep this module's code alive. Its stack is mapped before
    # start_new_thread returns.
    exec("_thread.start_new_thread(hold.acquire, ())", {"_thread": _thread, "hold": hold})
    _thread.stack_size(0)  # threads started later get the default again
    low = least = 0  # the smallest new mapping that holds the image and the margin
    for m in _mappings() - before:
        n = m[1] - m[0]
        if n >= room + MARGIN and (not least or n < least):
            low, least = m[0], n
    if not least:
        raise OSError("rom: no memory outside the heap for the image")
    return uctypes.bytearray_at(low, size)


def mount(path, mount_point="/rom"):
    """Mount the ROMFS image in the file path at mount_point; return its size."""
    import os

    size = os.stat(path)[6]
    memory = _outside_heap(size)
    chunk = bytearray(1024)
    done = 0
    with open(path, "rb") as f:
        while done < size:
            n = f.readinto(chunk)
            if not n:
                raise OSError("rom: %s ended early" % path)
            memory[done:done + n] = memoryview(chunk)[:n]
            done += n
    if memory[:3] != HEADER:
        raise OSError("rom: %s is not a ROMFS image" % path)
    vfs.mount(vfs.VfsRom(memory), mount_point)
    return size


def boot(image):
    """Mount the image at /rom. An image built for this board (`onboard romfs
    --board unix`) brings its modules: /rom then comes before the board's
    folder, so they run from /rom, as a board's from its partition."""
    mount(image)
    try:
        open("/rom/network.mpy").close()
        sys.path.remove("/rom")
        sys.path.insert(1, "/rom")
    except (OSError, ValueError):
        pass
