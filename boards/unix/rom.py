# The Unix board's ROMFS partition: `onboard device run --romfs IMAGE` runs
#   micropython rom.py IMAGE MAIN
# which mounts IMAGE (`make romfs`) at /rom with vfs.VfsRom, as a board's
# firmware mounts its ROMFS partition, then runs MAIN (firmware/main.py).
#
# On a board the image is in flash and its .mpy code runs in place: none of
# it is on the heap. Here it must not be either, or the heap figures would
# count it. This port has no ffi (no mmap or malloc), so the image goes into
# memory the process owns outside the GC heap: the lower end of a parked
# thread's stack (the thread runs at the top of it and waits there forever;
# the GC scans a thread's stack only from where it runs up), found by the new
# mapping the thread's start adds to /proc/self/maps.
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
    started = _thread.allocate_lock()
    started.acquire()

    def park():
        started.release()
        hold.acquire()  # never released: the stack below stays ours

    _thread.stack_size(room + MARGIN)
    _thread.start_new_thread(park, ())
    _thread.stack_size(0)  # threads started later get the default again
    started.acquire()
    new = [m for m in _mappings() - before if m[1] - m[0] >= room + MARGIN]
    if not new:
        raise OSError("rom: no memory outside the heap for the image")
    low = min(new, key=lambda m: m[1] - m[0])[0]
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


def run(path):
    """Run a script (firmware/main.py) as the port runs its main script."""
    with open(path) as f:
        code = compile(f.read(), path, "exec")
    exec(code, {"__name__": "__main__", "__file__": path})


if __name__ == "__main__":
    image, main = sys.argv[1], sys.argv[2]
    mount(image)
    sys.path[0] = main.rsplit("/", 1)[0]  # as when the port runs MAIN itself
    try:
        # an image built for this board (`onboard romfs --board unix`) brings
        # its modules: they run from /rom, as a board's from its partition
        open("/rom/network.mpy").close()
        sys.path.remove("/rom")
        sys.path.insert(1, "/rom")
    except (OSError, ValueError):
        pass
    del image
    run(main)
