"""End to end: `octopanel login URL` through OctoPrint's app-keys workflow, approved or denied by the admin."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def clean_env(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPRINT_", "OCTOPANEL_", "XDG_CONFIG_"))}
    env["HOME"] = str(home)
    return env


def start_login(printer, tmp_path, *extra):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    target = tmp_path / "conf" / "octopanel.yaml"
    proc = subprocess.Popen(
        [str(BIN / "octopanel"), "login", printer.url, "--config", str(target), *extra],
        env=clean_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, target, home


def decide(printer, decision, timeout=20):
    """As the admin, wait for octopanel's pending request and approve or deny it."""
    admin = {"X-Api-Key": printer.admin_key}
    deadline = time.monotonic() + timeout
    while True:
        pending = printer.request("GET", "/api/plugin/appkeys", headers=admin).json().get("pending") or {}
        mine = [p for p in pending.values() if p.get("app_id") == "octopanel"]
        if mine:
            break
        assert time.monotonic() < deadline, "no pending app-key request from octopanel"
        time.sleep(0.05)
    assert len(mine) == 1, pending
    response = printer.request(
        "POST", f"/plugin/appkeys/decision/{mine[0]['user_token']}", json={"decision": decision}, headers=admin
    )
    assert response.status_code == 204, response.text


def test_login_approved_writes_a_private_config_with_a_working_key(printer, tmp_path):
    proc, target, home = start_login(printer, tmp_path, "--timeout", "30")
    try:
        decide(printer, True)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Approve the access request from 'octopanel'" in err
    assert out == f"API key saved to {target} (mode 0600). Try: 8status\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    saved = yaml.safe_load(target.read_text())
    assert saved["url"] == printer.url
    key = saved["api_key"]
    assert key and key != printer.admin_key  # an application key (OctoPrint reuses the one it has for 'octopanel')
    assert key not in out + err
    # The key works, through our own entry point and the saved file alone.
    status = subprocess.run(
        [str(BIN / "8status"), "-q", "--config", str(target)],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert status.returncode == 0, status.stderr
    assert status.stdout == "Operational\n"
    assert "readable by others" not in status.stderr


def test_login_denied_exits_1_and_writes_nothing(printer, tmp_path):
    proc, target, _home = start_login(printer, tmp_path, "--timeout", "30")
    try:
        decide(printer, False)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "octopanel login: the access request was denied or has expired" in err
    assert "Traceback" not in err
    assert not target.exists()


def test_login_against_nothing_exits_1(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run(
        [str(BIN / "octopanel"), "login", "http://127.0.0.1:9", "--config", str(tmp_path / "c.yaml")],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "octopanel login: cannot reach OctoPrint at http://127.0.0.1:9/" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "c.yaml").exists()


def test_login_usage_error_exits_2(tmp_path):
    proc = subprocess.run(
        [str(BIN / "octopanel"), "login"], env=clean_env(tmp_path), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_login_nobody_approves_within_the_timeout(printer, tmp_path):
    proc, target, _home = start_login(printer, tmp_path, "--timeout", "1")
    try:
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        decide(printer, False)  # withdraw the request it left pending, for the next test
    assert proc.returncode == 1
    assert "octopanel login: nobody approved the access request within 1 s" in err
    assert not target.exists()


@pytest.mark.parametrize("token", ["../../../api/users", "..", "a/b", None])
def test_an_app_token_is_one_path_segment_or_refused(tmp_path, token):
    """The token comes from the server and goes into the next URL: a traversing one must not reach another
    endpoint with the login's session (before, `../../../api/users` made the poll GET /api/users)."""
    from stubserver import Reply, StubServer

    routes = {
        ("GET", "/plugin/appkeys/probe"): Reply(204),
        ("POST", "/plugin/appkeys/request"): Reply(201, {"app_token": token}),
        ("GET", "/api/users"): Reply(200, {"users": []}),
    }
    home = tmp_path / "home"
    home.mkdir()
    with StubServer(routes) as stub:
        proc = subprocess.run(
            [str(BIN / "octopanel"), "login", stub.url, "--config", str(tmp_path / "c.yaml"), "--timeout", "3"],
            env=clean_env(home),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1, proc.stderr
    assert "without a usable app token" in proc.stderr and "Traceback" not in proc.stderr
    assert [r.path for r in stub.requests] == ["/plugin/appkeys/probe", "/plugin/appkeys/request"]
    assert not (tmp_path / "c.yaml").exists()
