"""`onboard deploy`: what it copies to a board (no board is attached here)."""

import pytest

from onboard_cli.deploy import commands
from onboard_cli.paths import ToolError


def test_deploy_copies_library_board_firmware_and_config_then_resets(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{}")
    cmd = commands("/dev/ttyUSB0", "esp32_s3", config, ca=tmp_path / "ca.pem")
    targets = [cmd[i + 1] for i, arg in enumerate(cmd) if arg.startswith(("/", "build")) and
               i + 1 < len(cmd) and cmd[i + 1].startswith(":")]
    assert targets == [":", ":board.py", ":esp32_common.py", ":boot.py", ":main.py",
                       ":config.json", ":ca.pem"]
    assert cmd[cmd.index(":board.py") - 1].endswith("boards/esp32_s3/board.py")
    assert cmd[-1] == "reset"


def test_deploy_to_an_unknown_board_is_one_clear_error(tmp_path):
    with pytest.raises(ToolError, match="no boards/esp32_x/board.py"):
        commands("/dev/ttyUSB0", "esp32_x", tmp_path / "c.json")
