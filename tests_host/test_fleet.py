"""`onboard fleet --devices 20`: every device online, none needing setup twice."""

import json
import subprocess
import sys
from pathlib import Path


def test_fleet_of_20_all_online_none_needing_setup_mode_twice():
    onboard = str(Path(sys.executable).with_name("onboard"))
    run = subprocess.run([onboard, "fleet", "--devices", "20"], capture_output=True, text=True,
                         timeout=600)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, run.stdout + run.stderr
    assert (summary["online"], summary["failures"], summary["setup_twice"]) == (20, 0, 0)
    assert run.stderr == ""
