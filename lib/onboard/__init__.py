# onboard: from "just flashed" to "online in its IoT cloud". See README.md.
__version__ = "0.1.0"


def let_go(name):
    """Let go of onboard.<name> (a dotted name for a subpackage's module):
    out of sys.modules and off its package, so that nothing here keeps its
    code in RAM. Imported again when needed. (Runtime.forget and the store
    use it; here because the package is loaded whenever they run.)"""
    import sys

    sys.modules.pop("onboard." + name, None)
    package, _, name = ("onboard." + name).rpartition(".")
    package = sys.modules.get(package)
    if package and name in package.__dict__:
        delattr(package, name)
