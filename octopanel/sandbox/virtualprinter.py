"""A real local OctoPrint 1.11.8 with its Virtual Printer on 127.0.0.1, for the tests and `octopanel demo`.

OctoPrint runs from its own cached venv (see octoprint_venv); we talk to it over HTTP only.
Facts this relies on are in /work/shared/octoprint-facts.md and were re-checked against 1.11.8.
"""

import atexit
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests

from octopanel.sandbox.octoprint_venv import VirtualPrinterError, admin_template, ensure_venv, tail
from octopanel.sandbox.seriallog import SerialLog

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.02
AMBIENT_C = 21.3  # the Virtual Printer's default ambientTemperature
# The Virtual Printer heats at 10 °C/s and cools at 2 °C/s (virtual.py _simulateTemps), reporting every
# 2 s (M155 S2): 21 → 170 °C takes ~15 s, 200 °C ~18 s; cooling 200 → 21 °C would take 90 s, which is
# why reset() reconnects (a fresh Virtual Printer starts at ambient) and set_ambient() exists.

ACTIVE_FLAGS = ("printing", "paused", "pausing", "resuming", "cancelling", "finishing")

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


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the thread that started it dies.

    Covers a test run killed with SIGKILL, where neither fixtures nor atexit run. (A caveat of
    PR_SET_PDEATHSIG: it fires when the starting *thread* exits, so start from a long-lived thread.)"""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VirtualPrinter:
    """One OctoPrint server with the Virtual Printer; a context manager. See start() and stop()."""

    url: str  # these five are set by start()
    api_key: str
    admin_key: str
    password: str
    port: int

    def __init__(
        self, basedir: "str | os.PathLike[str] | None" = None, cache_dir: "str | os.PathLike[str] | None" = None
    ) -> None:
        self.cache_dir = cache_dir
        self.basedir: Path | None = Path(basedir) if basedir is not None else None
        self._own_basedir = basedir is None
        self.url = self.api_key = self.admin_key = self.password = self.port = None  # type: ignore[assignment]  # until start()
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self._uploads = 0  # print_file() names

    @property
    def serial_log(self) -> Path:
        assert self.basedir is not None, "start() first"
        return self.basedir / "logs" / "serial.log"

    @property
    def server_log(self) -> Path:
        assert self.basedir is not None, "start() first"
        return self.basedir / "serve.log"

    def __enter__(self) -> "VirtualPrinter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "VirtualPrinter":
        """Write a fresh basedir, start `octoprint serve` on a free port and wait until it answers."""
        venv = ensure_venv(self.cache_dir)
        users, self.password = admin_template(venv)
        if self._own_basedir:
            self.basedir = Path(tempfile.mkdtemp(prefix="octopanel-octoprint-"))
        assert self.basedir is not None  # given, or made just now
        (self.basedir / "data" / "appkeys").mkdir(parents=True, exist_ok=True)
        self.admin_key, self.api_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        # JSON is YAML, so no YAML library is needed; OctoPrint rewrites these files as YAML itself.
        (self.basedir / "config.yaml").write_text(json.dumps(QUIET_CONFIG))
        (self.basedir / "logging.yaml").write_text(json.dumps(LOGGING_CONFIG))
        (self.basedir / "users.yaml").write_text(users.replace("apikey: null", f"apikey: {self.admin_key}"))
        # api_key is an application key of the admin, the kind users get through the appkeys workflow.
        (self.basedir / "data" / "appkeys" / "keys.yaml").write_text(
            json.dumps({"admin": [{"app_id": "octopanel", "api_key": self.api_key}]})
        )
        self.session.headers["X-Api-Key"] = self.api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.server_log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(venv / "bin" / "octoprint"),
                    "serve",
                    "--basedir",
                    str(self.basedir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--iknowwhatimdoing",
                ],  # refused as root without the flag
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() kills it whole, Ctrl-C misses it
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        atexit.register(self.stop)
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_up(self) -> None:
        assert self.process is not None  # start() launched it
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VirtualPrinterError(f"octoprint exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.session.get(self.url + "/api/version", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise VirtualPrinterError(f"OctoPrint did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return tail(self.server_log.read_text(errors="replace"), lines)
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self) -> None:
        """Terminate the process group (kill it after STOP_TIMEOUT_S), then remove a temporary basedir."""
        atexit.unregister(self.stop)
        if self.process is not None and self.process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.process.pid, sig)
                    self.process.wait(STOP_TIMEOUT_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        self.process = None
        self.session.close()
        if self._own_basedir and self.basedir is not None:
            shutil.rmtree(self.basedir, ignore_errors=True)
            self.basedir = None

    # -- talking to it ------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One API call with the app key; returns the Response whatever its status."""
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kwargs)

    def _ok(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise VirtualPrinterError(f"{method} {path}: {response.status_code} {response.text.strip()}")
        return response

    def command(self, *lines: str) -> None:
        """Send raw G-code lines (or Virtual Printer `!!DEBUG:` commands) via POST /api/printer/command."""
        self._ok("POST", "/api/printer/command", json={"commands": list(lines)})

    def flags(self) -> set[str]:
        """The set of true state.flags; empty while disconnected (/api/printer answers 409 then)."""
        response = self.request("GET", "/api/printer", params={"exclude": "temperature,sd"})
        if response.status_code == 409:
            return set()
        response.raise_for_status()
        return {name for name, on in response.json()["state"]["flags"].items() if on}

    def wait_state(self, names: str | Iterable[str], timeout: float = 10, absent: str | Iterable[str] = ()) -> set[str]:
        """Poll until every flag in names is true and every flag in absent is false; return the flags."""
        names = {names} if isinstance(names, str) else set(names)
        absent = {absent} if isinstance(absent, str) else set(absent)
        deadline = time.monotonic() + timeout
        while True:
            flags = self.flags()
            if names <= flags and not absent & flags:
                return flags
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"after {timeout} s the flags are {sorted(flags)}, wanted {sorted(names)} without {sorted(absent)}"
                )
            time.sleep(POLL_S)

    def connect(self, timeout: float = 20) -> None:
        """Connect to the Virtual Printer; return once it is operational and has reported temperatures."""
        mark = self.mark()
        self._ok("POST", "/api/connection", json={"command": "connect", "port": "VIRTUAL"})
        self.wait_state({"operational", "ready"}, timeout)
        # "Operational" comes before the handshake's last line (M20, the SD file list) is logged: wait for
        # it, so that a mark() taken after connect() never sees the handshake.
        self.wait_sent(mark, lambda sent: "M20" in sent, timeout)
        # The first temperature autoreport (M155 S2) comes 2 s after the handshake; an M105 asks now, so
        # that /api/printer/tool has values as soon as connect() returns.
        self.command("M105")
        self.wait_temperatures(timeout)

    def wait_temperatures(self, timeout: float = 5) -> None:
        """Poll until OctoPrint has a hotend reading: /api/printer/tool is {} until the first report."""
        deadline = time.monotonic() + timeout
        while "tool0" not in self._ok("GET", "/api/printer/tool").json():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no temperature report within {timeout} s")
            time.sleep(POLL_S)

    def disconnect(self, timeout: float = 10) -> None:
        self._ok("POST", "/api/connection", json={"command": "disconnect"})
        deadline = time.monotonic() + timeout
        while self._ok("GET", "/api/connection").json()["current"]["state"] != "Closed":
            if time.monotonic() > deadline:
                raise TimeoutError(f"not disconnected after {timeout} s")
            time.sleep(POLL_S)

    # -- what the printer received ------------------------------------------------------------

    @property
    def serial(self) -> SerialLog:
        return SerialLog(self.serial_log)

    def mark(self) -> int:
        """The current size of serial.log; pass it to sent_since(), wait_sent() or settle()."""
        return self.serial.mark()

    def sent_since(self, mark: int, raw: bool = False) -> list[str]:
        return self.serial.sent_since(mark, raw)

    def wait_sent(
        self, mark: int, expected: "Iterable[str | re.Pattern[str]] | Callable[[list[str]], bool]", timeout: float = 5
    ) -> list[str]:
        return self.serial.wait_sent(mark, expected, timeout)

    def settle(self, mark: int, quiet: float = 0.2, timeout: float = 3) -> list[str]:
        return self.serial.settle(mark, quiet, timeout)

    # -- scenarios ------------------------------------------------------------------------------

    def print_file(self, n_moves: int = 300, name: str | None = None) -> set[str]:
        """Upload n_moves G1 X180/X20 F3000 moves (300 print for ~48 s), start them, return the flags.

        Returns once the first move was sent, so a mark() taken next sees only moves. Each upload gets its
        own name unless one is given: OctoPrint 1.11.8 answers 500 to an upload whose analysis entry ties
        with one still queued for the same name (its analysis waits while printing), because its priority
        queue then compares the entries' printer-profile dicts (TypeError in filemanager/analysis.py)."""
        if name is None:
            self._uploads += 1
            name = f"octopanel-long-{self._uploads}.gcode"
        lines = ["G90"] + [f"G1 X{180 if i % 2 == 0 else 20} F3000" for i in range(n_moves)]
        mark = self.mark()
        self._ok(
            "POST",
            "/api/files/local",
            files={"file": (name, "\n".join(lines) + "\n")},
            data={"select": "true", "print": "true"},
        )
        flags = self.wait_state("printing")
        self.wait_sent(mark, lines[:2])
        return flags

    def heat_tool(self, target: float = 200, at_least: float = 170, timeout: float = 40) -> float:
        """Set the hotend target and wait until its actual temperature reaches at_least (~15 s for 170)."""
        self._ok("POST", "/api/printer/tool", json={"command": "target", "targets": {"tool0": target}})
        deadline = time.monotonic() + timeout
        while (actual := self._ok("GET", "/api/printer/tool").json()["tool0"]["actual"]) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"hotend at {actual} °C after {timeout} s, wanted {at_least} °C")
            time.sleep(0.2)
        return actual

    def set_ambient(self, celsius: float) -> None:
        """Make the Virtual Printer start at celsius (hotend and bed) at once, via its settings and a reconnect.

        The quick way to a hot nozzle; it stays there while the targets are 0. reset() undoes it."""
        self._ok("POST", "/api/settings", json={"plugins": {"virtual_printer": {"ambientTemperature": celsius}}})
        self.disconnect()
        self.connect()

    def reset(self) -> None:
        """Return to a clean idle state: no job, a fresh connection, factors 100 %, targets 0, ambient temps.

        Reconnecting also drops the Virtual Printer's injected faults (sleep, go_awol…) and the selected file."""
        if self.flags() & set(ACTIVE_FLAGS):
            self._ok("POST", "/api/job", json={"command": "cancel"})
            self.wait_state({"operational"}, timeout=10, absent=ACTIVE_FLAGS)
        settings = self._ok("GET", "/api/settings").json()["plugins"]["virtual_printer"]
        if settings.get("ambientTemperature") != AMBIENT_C:
            self._ok("POST", "/api/settings", json={"plugins": {"virtual_printer": {"ambientTemperature": AMBIENT_C}}})
        if self._ok("GET", "/api/connection").json()["current"]["state"] != "Closed":
            self.disconnect()
        self.connect()
        mark = self.mark()
        # Integers: OctoPrint multiplies a JSON float factor by 100 (150.0 → M220 S15000).
        self._ok("POST", "/api/printer/printhead", json={"command": "feedrate", "factor": 100})
        self._ok("POST", "/api/printer/tool", json={"command": "flowrate", "factor": 100})
        self._ok("POST", "/api/printer/tool", json={"command": "target", "targets": {"tool0": 0}})
        self._ok("POST", "/api/printer/bed", json={"command": "target", "target": 0})
        # Wait for them to reach the log, so that a test's mark() taken next does not see them.
        self.wait_sent(mark, ["M220 S100", "M221 S100", re.compile(r"M104 (T0 )?S0"), "M140 S0"])
