"""`onboard build`: every module of lib/ compiled with mpy-cross into build/."""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from .paths import BOARD_UNIX, BUILD, LIB, ROOT, ToolError, tool


def build(out=BUILD):
    """Compile lib/**.py to out/**.mpy (and the Unix board's modules to
    out/board_unix/, for simulated devices run with --mpy); return
    [(module path, bytes)] of lib/."""
    mpy_cross = tool("mpy-cross")
    keep = set()
    for src in sorted(BOARD_UNIX.glob("*.py")):
        if src.name != "manifest.py":
            dst = out / "board_unix" / src.with_suffix(".mpy").name
            compile_one(mpy_cross, src, src.name, dst)
            keep.add(dst)
    sizes = []
    for src in sorted(LIB.rglob("*.py")):
        rel = src.relative_to(LIB)
        dst = out / rel.with_suffix(".mpy")
        compile_one(mpy_cross, src, str(rel), dst)
        sizes.append((str(rel.with_suffix(".mpy")), dst.stat().st_size))
    stamp = out / "onboard" / "_build.mpy"
    stamp_build(mpy_cross, stamp)
    # nothing but this build in build/: a module deleted from lib/, or any
    # other file left there, would still be imported (firmware/main.py
    # imports an app module from the board's folder when there is one)
    keep |= {out / name for name, _ in sizes} | {stamp}
    for folder in ("onboard", "board_unix"):
        for stale in (out / folder).rglob("*"):
            if stale.is_file() and stale not in keep and not stale.name.endswith(PART):
                stale.unlink()
    return sizes


def build_time():
    """The build's Unix time: SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if text:
        try:
            return int(text)
        except ValueError:
            raise ToolError(f"SOURCE_DATE_EPOCH: not a number of seconds: {text!r}") from None
    return int(time.time())


def stamp_text(unix):
    """onboard/_build.py for a build at unix: BUILD (Unix seconds, the floor of
    onboard.clock) and BUILD_DATE as C's __DATE__ " " __TIME__, in UTC."""
    t = time.gmtime(unix)
    date = "%s %2d %d %s" % (time.strftime("%b", t), t.tm_mday, t.tm_year,
                             time.strftime("%H:%M:%S", t))
    return (f"# written by `onboard build`: the firmware's build time\n"
            f"BUILD = {unix}\nBUILD_DATE = {date!r}\n")


def stamp_build(mpy_cross, dst, unix=None):
    """Compile the build stamp into dst (build/onboard/_build.mpy)."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "_build.py"
        src.write_text(stamp_text(build_time() if unix is None else unix))
        compile_one(mpy_cross, src, "onboard/_build.py", dst)


# -O3, as micropython-lib compiles its packages: no line-number tables and no
# asserts in the bytecode (a device's tracebacks name the function, not the line)
OPT = "-O3"
PART = ".part"  # a file being compiled (another build's sweep leaves it alone)


def module_name(path):
    """The module a file under lib/ (or a package's) is: onboard/mqtt.py ->
    onboard.mqtt, a package's __init__.py -> the package. It is also
    the source name each .mpy carries (tracebacks show it): importing the
    module interns that word already, whereas a path would be one more qstr
    per module, in RAM for good (about 25 B each on a 32-bit port)."""
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def compile_one(mpy_cross, src, name, dst):
    # compiled beside it, then put in place in one step: whoever reads build/
    # meanwhile (a device booting from it, a deploy copying it: make test
    # builds from several processes at once) gets the old file or the new
    # one, never half of one
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(f".{dst.name}.{os.getpid()}{PART}")
    proc = subprocess.run([mpy_cross, OPT, "-o", str(part), "-s", module_name(name), str(src)],
                          capture_output=True, text=True)
    if proc.returncode:
        part.unlink(missing_ok=True)
        raise ToolError(f"mpy-cross failed on {name}: {proc.stderr.strip()}")
    os.replace(part, dst)


def size_table(sizes):
    width = max(len(name) for name, _ in sizes)
    lines = [f"{'module':<{width}}  {'bytes':>7}"]
    lines += [f"{name:<{width}}  {size:>7}" for name, size in sizes]
    lines.append(f"{'total':<{width}}  {sum(s for _, s in sizes):>7}")
    return "\n".join(lines)


def mip_package(version="0.1.0"):
    """The text of package.json for `mpremote mip install`: every module of lib/."""
    # (the source is the repository's lib/, also when LIB is a copy: onboard mutate)
    names = sorted(str(p.relative_to(LIB)) for p in LIB.rglob("*.py"))
    urls = [[name, "lib/" + name] for name in names]
    return json.dumps({"urls": urls, "deps": [], "version": version}, indent=2) + "\n"


def write_mip_package():
    """package.json as mip_package() has it (written only when it differs)."""
    text = mip_package()
    path = ROOT / "package.json"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def main(args):
    write_mip_package()
    sizes = build()
    print(size_table(sizes))
    print(f"{len(sizes)} modules compiled into {BUILD}")
