"""onboard's component manifests (manifests/onboard-*/manifest.py), read on the host.

The manifests are MicroPython manifest files, written for `make firmware`'s
freezing (micropython/tools/manifestfile.py evaluates them there). This
module evaluates the same files with the subset of that API they use
(metadata, add_library, require, include, package, module, options), so
`onboard deploy --cloud`, `onboard romfs` and the bench's product size
take their module lists from the very files a frozen build uses."""

import os
from pathlib import Path

from .paths import ROOT, ToolError

MANIFESTS = ROOT / "manifests"
CLOUDS = ("blynk", "spokezone", "allthingstalk", "imp", "plgd")
COMPONENTS = ("core", "net", "setup", "clients") + CLOUDS


class _Options:
    def __init__(self, **kwargs):
        self._kwargs, self._defaults = kwargs, {}

    def defaults(self, **kwargs):
        self._defaults = kwargs

    def __getattr__(self, name):
        return self._kwargs.get(name, self._defaults.get(name))


class Manifest:
    """The files one or more manifests name: .files is [(target, source path)]
    in order, each target once (a component required twice counts once)."""

    def __init__(self, path_vars=None):
        self.files = []
        self._targets = set()
        self._visited = set()
        self._libraries = {}
        self._dir = None
        self._vars = path_vars or {}

    def _path(self, path):
        for name, value in self._vars.items():
            path = path.replace(f"$({name})", value)
        return Path(self._dir or ".", path).resolve()

    def include(self, path, **kwargs):
        if not isinstance(path, str):
            for p in path:
                self.include(p, **kwargs)
            return
        if "$(" in path:
            return  # the port's own manifest ($(PORT_DIR)): not ours to list
        path = self._path(path)
        if path.is_dir():
            path = path / "manifest.py"
        if path in self._visited:
            return
        if not path.is_file():
            raise ToolError(f"manifest {path}: no such file")
        self._visited.add(path)
        outer, self._dir = self._dir, path.parent
        api = {"metadata": lambda **kw: None, "include": self.include, "require": self.require,
               "add_library": self.add_library, "package": self.package, "module": self.module,
               "options": _Options(**kwargs), "__file__": str(path)}
        try:
            exec(compile(path.read_text(), str(path), "exec"), api)
        finally:
            self._dir = outer

    def add_library(self, name, path, prepend=False):
        self._libraries[name] = self._path(path)

    def require(self, name, library=None, **kwargs):
        roots = [self._libraries[library]] if library in self._libraries else \
            list(self._libraries.values())
        for root in roots:
            for folder, _, names in os.walk(root):
                if os.path.basename(folder) == name and "manifest.py" in names:
                    self.include(str(Path(folder)), **kwargs)
                    return
        raise ToolError(f"manifest: require({name!r}): no such component")

    def package(self, package, files=None, base_path=".", opt=None):
        base = self._path(base_path)
        if files is None:
            files = sorted(str(p.relative_to(base / package))
                           for p in (base / package).rglob("*.py"))
        for f in files:
            self._add(f"{package}/{f}", base / package / f)

    def module(self, name, base_path=".", opt=None):
        self._add(name, self._path(base_path) / name)

    def _add(self, target, source):
        if not source.is_file():
            raise ToolError(f"manifest in {self._dir}: {source} does not exist")
        if target not in self._targets:
            self._targets.add(target)
            self.files.append((target, source))


def component_manifest(name):
    path = MANIFESTS / ("onboard" if name == "all" else f"onboard-{name}") / "manifest.py"
    if not path.is_file():
        raise ToolError(f"no component {name!r} (one of: all, {', '.join(COMPONENTS)})")
    return path


def files(*components):
    """[(target, source)] of the components (names of COMPONENTS, or "all"),
    each with what it requires; e.g. files("blynk") is a Blynk product."""
    m = Manifest()
    for name in components or ("all",):
        m.include(str(component_manifest(name)))
    return m.files


def modules(*components):
    """The onboard module paths (onboard/store.py, ...) of the components."""
    return [target for target, _ in files(*components) if target.startswith("onboard/")]
