"""The component manifests (manifests/onboard-*/manifest.py): every module
of lib/onboard in exactly one component, each cloud's product closed under
the imports of its modules, and the firmware's manifest built from them."""

import ast
from pathlib import Path

import pytest

from onboard_cli import manifest
from onboard_cli.manifest import CLOUDS, COMPONENTS, Manifest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"


def lib_modules():
    return {str(p.relative_to(LIB)) for p in LIB.rglob("*.py")}


def own_modules(component):
    """The modules a component's manifest lists itself (not those it requires)."""
    m = Manifest()
    m.require = lambda *a, **kw: None
    m.include(str(manifest.component_manifest(component)))
    return [target for target, _ in m.files]


def test_every_lib_module_is_in_exactly_one_component():
    listed = [t for c in COMPONENTS for t in own_modules(c)]
    assert sorted(listed) == sorted(lib_modules())


def test_the_whole_manifest_is_every_lib_module():
    assert sorted(manifest.modules("all")) == sorted(lib_modules())


def imported(target):
    """The onboard modules a module imports (at the top or inside functions)."""
    tree = ast.parse((LIB / target).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("onboard"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("onboard"))
    paths = set()
    for name in found:
        for candidate in (name.replace(".", "/") + ".py", name.replace(".", "/") + "/__init__.py"):
            if (LIB / candidate).is_file():
                paths.add(candidate)
    return paths


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_cloud_product_holds_every_module_its_modules_import(cloud):
    product = set(manifest.modules(cloud))
    missing = {f"{t} imports {m}" for t in product for m in imported(t) if m not in product}
    assert not missing


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_cloud_product_holds_the_profile_the_runtime_loads_by_its_name(cloud):
    # (boot imports "onboard.clouds." + the config's profile: no import
    # statement names it)
    assert f"onboard/clouds/{cloud}.py" in manifest.modules(cloud)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_cloud_product_holds_the_codes_an_application_imports(cloud):
    # (onboard.codes: the states and last_error codes, for applications; no
    # module of the library imports it)
    assert "onboard/codes.py" in manifest.modules(cloud)


def test_a_blynk_product_leaves_the_other_clouds_out():
    product = manifest.modules("blynk")
    assert {t for t in product if t.startswith("onboard/clouds/")} == {
        "onboard/clouds/blynk.py", "onboard/clouds/blynk_check.py",
        "onboard/clouds/blynk_online.py"}


def test_a_product_gets_the_blocking_clients_only_when_it_asks_for_them():
    # the runtime talks through ahttp/amqtt: onboard.http and onboard.mqtt are the application's
    blocking = {"onboard/http.py", "onboard/mqtt.py"}
    assert not blocking & set(manifest.modules("blynk"))
    assert blocking <= set(manifest.modules("blynk", "clients"))


def firmware_files(**options):
    m = Manifest()
    m.include(str(ROOT / "boards" / "esp32_generic" / "manifest.py"), **options)
    return [t for t, _ in m.files]


def test_the_firmware_freezes_every_cloud_by_default():
    frozen = firmware_files()
    assert sorted(t for t in frozen if t.startswith("onboard/")) == sorted(lib_modules())
    assert {"main.py", "board.py", "esp32_common.py"} <= set(frozen)


def test_the_firmware_freezes_only_the_clouds_named(monkeypatch):
    monkeypatch.setenv("ONBOARD_CLOUDS", "blynk")
    frozen = [t for t in firmware_files() if t.startswith("onboard/")]
    assert frozen == manifest.modules("blynk")
