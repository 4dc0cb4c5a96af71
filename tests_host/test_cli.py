"""The `onboard` command's defaults name the project's files wherever it is run from."""

from onboard_cli.main import parser
from onboard_cli.paths import BUILD, ROOT


def test_deploys_default_config_is_the_projects_example_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parser().parse_args(["deploy", "--port", "/dev/ttyUSB0"]).config
    assert open(config).read() == (ROOT / "firmware" / "config.example.json").read_text()


def test_romfs_writes_its_image_into_the_projects_build_folder_from_any_folder(tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parser().parse_args(["romfs"]).output == str(BUILD / "onboard.romfs")
