"""The clouds' host commands against cloudsim."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


def onboard(cloudsim, cloud, *args):
    cmd = [str(Path(sys.executable).with_name("onboard")), cloud, *args,
           "--api", f"https://127.0.0.1:{cloudsim.https_port}/{cloud}",
           "--ca", str(cloudsim.dir / "ca.pem")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return run


def ok(run):
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_imp_enroll_prints_canonical_tokens_and_reuses_a_plan(cloudsim):
    first = ok(onboard(cloudsim, "imp", "enroll", f"--api-key={cloudsim.admin_token}"))
    assert len(first["plan_id"]) == 18 and len(first["token_id"]) == 18
    again = ok(onboard(cloudsim, "imp", "enroll", f"--api-key={cloudsim.admin_token}",
                       "--plan-id", first["plan_id"]))
    assert again["plan_id"] == first["plan_id"]


def test_imp_enroll_sends_key_colon_and_an_empty_body_and_gets_a_new_plan(cloudsim):
    imp = cloudsim.clouds["imp"]
    plans = set(imp.plans)
    got = ok(onboard(cloudsim, "imp", "enroll", f"--api-key={cloudsim.admin_token}"))
    assert imp.seen[-1] == {"colon": True, "empty": True}  # as the server saw the request
    assert got["plan_id"] not in plans


def test_imp_enroll_with_a_wrong_key_is_one_line_and_exit_1(cloudsim):
    run = onboard(cloudsim, "imp", "enroll", "--api-key", "wrong")
    assert run.returncode == 1
    assert run.stderr.strip() == ("onboard imp: POST /v5/enroll: 401 "
                                  "missing or wrong API key (Basic)")


def test_imp_enroll_to_a_board_stores_the_pair_where_its_runtime_reads_it_and_never_shows_it(
        cloudsim, tmp_path, monkeypatch, capsys, mpy):
    # (the board: a folder, with the library; the fake mpremote logs each command line)
    import argparse
    import shutil

    from conftest import LIB
    from fakeboard import fake_mpremote

    from onboard_cli import clouds

    board = tmp_path / "board"
    shutil.copytree(LIB / "onboard", board / "onboard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(clouds, "mpremote", lambda: fake_mpremote(board))
    clouds.imp(argparse.Namespace(api=f"https://127.0.0.1:{cloudsim.https_port}/imp",
                                  ca=str(cloudsim.dir / "ca.pem"), timeout=15,
                                  api_key=cloudsim.admin_token, plan_id=None, port="fake"))
    shown = json.loads(capsys.readouterr().out)
    assert shown["written_to"] == "fake" and "token_id" not in shown
    token = "0x%016x" % int(cloudsim.clouds["imp"].enrolments[-1][1], 16)
    stored = mpy.run(f"from onboard.store import Store\n"
                     f"print(Store({str(board / 'onboard.json')!r}).get('enrol'))").lines[-1]
    assert token in stored and shown["plan_id"] in stored
    assert token not in (tmp_path / "board.argv").read_text()


def test_imp_enroll_to_a_board_without_the_library_fails_in_one_line_without_the_token(
        cloudsim, tmp_path, monkeypatch, capsys):
    import argparse

    from fakeboard import fake_mpremote

    from onboard_cli import clouds
    from onboard_cli.paths import ToolError

    board = tmp_path / "board"
    board.mkdir()
    monkeypatch.setattr(clouds, "mpremote", lambda: fake_mpremote(board))
    with pytest.raises(ToolError) as failed:
        clouds.imp(argparse.Namespace(api=f"https://127.0.0.1:{cloudsim.https_port}/imp",
                                      ca=str(cloudsim.dir / "ca.pem"), timeout=15,
                                      api_key=cloudsim.admin_token, plan_id=None, port="fake"))
    token = "%016x" % int(cloudsim.clouds["imp"].enrolments[-1][1], 16)
    assert str(failed.value).startswith("mpremote on fake: ImportError")
    assert "\n" not in str(failed.value)
    assert token not in str(failed.value) + capsys.readouterr().out


def test_blynk_provision_reconfigure_reprovision(cloudsim):
    prov = ok(onboard(cloudsim, "blynk", "provision-token", f"--token={cloudsim.admin_token}",
                      "--org", "1", "--owner", "1"))
    assert ok(onboard(cloudsim, "blynk", "reconfigure", f"--token={cloudsim.admin_token}",
                      "--device", str(prov["deviceId"]))) == {"deviceIsOffline": True}
    again = ok(onboard(cloudsim, "blynk", "reprovision", f"--token={cloudsim.admin_token}",
                       "--device", str(prov["deviceId"])))
    assert again["deviceId"] == prov["deviceId"] and again["token"] != prov["token"]


def test_spokezone_secrets_then_renew(cloudsim):
    sz = cloudsim.clouds["spokezone"]
    device_id = 4242
    sz.devices[device_id] = {"cpuId": "cpu-cli", "uuid": "uuid-cli", "name": "cli"}
    sz.device_token(device_id)
    secrets = ok(onboard(cloudsim, "spokezone", "secrets", "--device", str(device_id),
                         f"--access-token={cloudsim.admin_token}"))
    renewed = ok(onboard(cloudsim, "spokezone", "renew", "--token=" + secrets["token"],
                         "--cpu-id", "cpu-cli", "--uuid", "uuid-cli"))
    assert renewed == {"renewed": False}  # a fresh 7-day token is still valid


def test_plgd_onboard_prints_coapcloudconf_with_a_code_the_token_endpoint_accepts(cloudsim):
    conf = ok(onboard(cloudsim, "plgd", "onboard", f"--token={cloudsim.admin_token}",
                      "--device-id", "dev-cli"))
    assert set(conf) == {"apn", "cis", "sid", "at"}
    assert conf["at"] in cloudsim.clouds["plgd"].codes


def test_att_login_with_password_and_mfa_then_refresh(cloudsim):
    tokens = ok(onboard(cloudsim, "att", "login", "--username", "alice", "--password",
                        "alice-password", "--code", "246810"))
    again = ok(onboard(cloudsim, "att", "login", "--refresh-token", tokens["refresh_token"]))
    assert again["access_token"] != tokens["access_token"]
