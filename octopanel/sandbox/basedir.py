"""A sandbox OctoPrint's basedir and launch: quiet config, a never-rotating serial.log, keys, the serve command."""

import ctypes
import json
import signal
import socket
from pathlib import Path

QUIET_CONFIG = {
    "server": {
        "firstRun": False,
        "onlineCheck": {"enabled": False},
        "pluginBlacklist": {"enabled": False},
        "pythonEolCheck": {"enabled": False},
    },
    "plugins": {
        "_disabled": [
            "announcements",
            "tracking",
            "errortracking",
            "softwareupdate",
            "pluginmanager",
            "discovery",
            "health_check",
            "achievements",
            "pi_support",
        ],
        # By default the Virtual Printer injects resend and timeout errors at job lines 100–115.
        "virtual_printer": {"enabled": True, "simulated_errors": []},
    },
    "serial": {"log": True, "autoconnect": False, "port": "VIRTUAL"},
    "system": {
        "actions": [
            {"action": "reset", "name": "Reset", "command": "true"},
            {"action": "fail", "name": "Fail", "command": "false"},
        ]
    },
}
# serial.log's own handler is meant to roll over on every connect (in 1.11.8 it does so only on the
# first connect of a process); a plain never-rotating handler keeps byte offsets from mark() valid.
LOGGING_CONFIG = {"handlers": {"serialFile": {"class": "logging.handlers.RotatingFileHandler"}}}


def write_basedir(basedir: Path, users: str, admin_key: str, api_key: str) -> None:
    """Fill a fresh basedir: config, logging, the admin user (users.yaml template) and an app key."""
    (basedir / "data" / "appkeys").mkdir(parents=True, exist_ok=True)
    # JSON is YAML, so no YAML library is needed; OctoPrint rewrites these files as YAML itself.
    (basedir / "config.yaml").write_text(json.dumps(QUIET_CONFIG))
    (basedir / "logging.yaml").write_text(json.dumps(LOGGING_CONFIG))
    (basedir / "users.yaml").write_text(users.replace("apikey: null", f"apikey: {admin_key}"))
    # api_key is an application key of the admin, the kind users get through the appkeys workflow.
    (basedir / "data" / "appkeys" / "keys.yaml").write_text(
        json.dumps({"admin": [{"app_id": "octopanel", "api_key": api_key}]})
    )


def serve_command(venv: Path, basedir: Path, port: int) -> list[str]:
    """`octoprint serve` on 127.0.0.1:port (--iknowwhatimdoing: refused as root without the flag)."""
    return [
        str(venv / "bin" / "octoprint"),
        "serve",
        "--basedir",
        str(basedir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--iknowwhatimdoing",
    ]


def die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the thread that started it dies.

    Covers a test run killed with SIGKILL, where neither fixtures nor atexit run. (A caveat of
    PR_SET_PDEATHSIG: it fires when the starting *thread* exits, so start from a long-lived thread.)"""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
