"""package.json (mip) installs exactly the modules of lib/."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mip_package_lists_every_lib_module_and_nothing_else():
    urls = json.loads((ROOT / "package.json").read_text())["urls"]
    listed = {source for _, source in urls}
    present = {str(p.relative_to(ROOT)) for p in (ROOT / "lib").rglob("*.py")}
    assert listed == present


def test_mip_destinations_mirror_the_import_paths():
    urls = json.loads((ROOT / "package.json").read_text())["urls"]
    assert all(source == "lib/" + dest for dest, source in urls)


def test_the_committed_package_json_is_what_onboard_build_writes():
    # (the tests above read the committed file; `onboard build` rewrites it)
    from onboard_cli.build import mip_package

    assert mip_package() == (ROOT / "package.json").read_text()
