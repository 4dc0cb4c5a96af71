"""tests_device/ scripts on the Unix port, as `make test-device` runs them on a board."""

import json
import re
from pathlib import Path

import pytest

SCRIPTS = sorted(Path(__file__).resolve().parents[1].glob("tests_device/test_*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_device_script_passes_on_the_unix_port(mpy, script, cloudsim):
    # test_https.py's parameter: a URL served by cloudsim, and the CA to trust
    (mpy.workdir / "test_params.json").write_text(json.dumps(
        {"url": f"https://127.0.0.1:{cloudsim.https_port}/_sim/state",
         "ca": str(cloudsim.dir / "ca.pem")}))
    run = mpy.run(file=script, check=False)
    last = run.lines[-1] if run.lines else ""
    match = re.fullmatch(r"(\d+) passed, (\d+) failed", last)
    assert match, f"no summary line; output:\n{run.stdout}{run.stderr}"
    assert int(match[1]) > 0
    assert match[2] == "0", run.stdout
    assert run.returncode == 0
