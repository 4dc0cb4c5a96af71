"""`onboard build`: every module of lib/ compiled with mpy-cross into build/."""

import json
import subprocess

from .paths import BOARD_UNIX, BUILD, LIB, ROOT, ToolError, tool


def build(out=BUILD):
    """Compile lib/**.py to out/**.mpy (and the Unix board's modules to
    out/board_unix/, for simulated devices run with --mpy); return
    [(module path, bytes)] of lib/."""
    mpy_cross = tool("mpy-cross")
    for src in sorted(BOARD_UNIX.glob("*.py")):
        if src.name != "manifest.py":
            compile_one(mpy_cross, src, src.name, out / "board_unix" / src.with_suffix(".mpy").name)
    sizes = []
    for src in sorted(LIB.rglob("*.py")):
        rel = src.relative_to(LIB)
        dst = out / rel.with_suffix(".mpy")
        compile_one(mpy_cross, src, str(rel), dst)
        sizes.append((str(rel.with_suffix(".mpy")), dst.stat().st_size))
    # a module deleted from lib/ must not linger in build/
    keep = {out / name for name, _ in sizes}
    for stale in (out / "onboard").rglob("*.mpy"):
        if stale not in keep:
            stale.unlink()
    return sizes


def compile_one(mpy_cross, src, name, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([mpy_cross, "-o", str(dst), "-s", name, str(src)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise ToolError(f"mpy-cross failed on {name}: {proc.stderr.strip()}")


def size_table(sizes):
    width = max(len(name) for name, _ in sizes)
    lines = [f"{'module':<{width}}  {'bytes':>7}"]
    lines += [f"{name:<{width}}  {size:>7}" for name, size in sizes]
    lines.append(f"{'total':<{width}}  {sum(s for _, s in sizes):>7}")
    return "\n".join(lines)


def write_mip_package(version="0.1.0"):
    """package.json for `mpremote mip install`: every module of lib/."""
    urls = [[str(p.relative_to(LIB)), str(p.relative_to(ROOT))] for p in sorted(LIB.rglob("*.py"))]
    text = json.dumps({"urls": urls, "deps": [], "version": version}, indent=2) + "\n"
    path = ROOT / "package.json"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def main(args):
    write_mip_package()
    sizes = build()
    print(size_table(sizes))
    print(f"{len(sizes)} modules compiled into {BUILD}")
