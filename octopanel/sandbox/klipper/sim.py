# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""KlipperSim's processes: fakemcu, klippy (Kalico) and Moonraker in a temporary run directory, on a free port.

The run directory holds config/ (printer.cfg, moonraker.conf, octopanel.cfg), gcodes/, logs/ and the klippy
socket; it lives in /tmp because a Unix socket path must stay under 108 bytes. Each child gets its own process
group (stopped whole) and dies with the parent thread that started it (PR_SET_PDEATHSIG), like VirtualPrinter.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from octopanel.datafiles import shipped_path
from octopanel.sandbox.basedir import die_with_parent, free_port
from octopanel.sandbox.klipper.config import moonraker_conf, printer_cfg
from octopanel.sandbox.klipper.control import SimControl
from octopanel.sandbox.klipper.venvs import KLIPPY, MOONRAKER, KlipperSimError, ensure_all
from octopanel.sandbox.octoprint_venv import tail

MACROS = "etc/klipper/octopanel.cfg"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
POLL_S = 0.05
# klippy opens an [mcu] serial path under this prefix as a pipe (no baud rate), as for the Linux-process MCU.
HOST_LINK_PREFIX = "/tmp/klipper_host_"
LOGS = ("fakemcu.log", "klippy.log", "klippy.out", "moonraker.log", "moonraker.out")


class KlipperSim(SimControl):
    """A real Moonraker and Klipper host on a simulated printer; a context manager. See start() and close().

    macros: include the shipped guard macros (etc/klipper/octopanel.cfg) in printer.cfg, as a user would.
    klippy: "kalico" (Kalico's klippy, the default) or "klipper" (Klipper's own, venvs.KLIPPER).
    extra_cfg: sections appended to printer.cfg (a user's own macros)."""

    def __init__(
        self, macros: bool = True, cache_dir: Path | None = None, klippy: str = "kalico", extra_cfg: str = ""
    ) -> None:
        if klippy not in KLIPPY:
            raise KlipperSimError(f"klippy={klippy!r}: expected one of {', '.join(KLIPPY)}")
        self.macros = macros
        self.extra_cfg = extra_cfg
        self.klippy = klippy
        self.cache_dir = cache_dir
        self.run: Path | None = None
        self.port = 0
        self.url = ""
        self.procs: dict[str, subprocess.Popen] = {}
        self.session = requests.Session()

    def __enter__(self) -> "KlipperSim":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def logs(self) -> Path:
        assert self.run is not None
        return self.run / "logs"

    def start(self) -> "KlipperSim":
        """Install the venvs if needed, write the run directory, start the three processes, wait for ready."""
        ensure_all(self.cache_dir, self.klippy)
        self.run = Path(tempfile.mkdtemp(prefix="octopanel-klipper-", dir="/tmp"))
        for sub in ("config", "gcodes", "logs"):
            (self.run / sub).mkdir()
        self.link = HOST_LINK_PREFIX + self.run.name
        include = None
        if self.macros:
            source = shipped_path(MACROS)
            if source is None:
                raise KlipperSimError(f"{MACROS} is missing from this octopanel installation")
            shutil.copyfile(source, self.run / "config" / "octopanel.cfg")
            include = "octopanel.cfg"
        (self.run / "config" / "printer.cfg").write_text(printer_cfg(self.run, self.link, include) + self.extra_cfg)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.run / "config" / "moonraker.conf").write_text(moonraker_conf(self.run, self.port))
        atexit.register(self.close)
        try:
            self._spawn("fakemcu", [sys.executable, "-m", "octopanel.sandbox.klipper.fakemcu", "--link", self.link])
            self._wait_for(lambda: os.path.lexists(self.link), "fakemcu's link", 10)
            cfg = self.run / "config" / "printer.cfg"
            venv, module = KLIPPY[self.klippy]
            klippy = [str(venv.python(self.cache_dir)), "-m", module, str(cfg)]
            klippy += ["-I", str(self.run / "printer_tty"), "-a", str(self.run / "klippy.sock")]
            self._spawn("klippy", klippy + ["-l", str(self.logs / "klippy.log")], "klippy.out")
            self.start_moonraker()
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, name: str, argv: list[str], log: str | None = None) -> None:
        assert self.run is not None
        with open(self.logs / (log or f"{name}.log"), "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=self.run,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped whole, and Ctrl-C in a test run misses it
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )

    def start_moonraker(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start Moonraker (again) on the same port and wait until it reports klippy ready."""
        assert self.run is not None
        moonraker = MOONRAKER.path(self.cache_dir) / "bin" / "moonraker"
        argv = [str(moonraker), "-d", str(self.run), "-c", str(self.run / "config" / "moonraker.conf")]
        self._spawn("moonraker", argv + ["-l", str(self.logs / "moonraker.log")], "moonraker.out")
        self.wait_ready(timeout)

    def reset(self, home: bool = True) -> None:
        """SimControl.reset(), after starting Moonraker again if a test stopped it and failed before restarting."""
        if "moonraker" not in self.procs:
            self.start_moonraker()
        super().reset(home)

    def stop_moonraker(self) -> None:
        """Stop Moonraker only; klippy keeps running (and printing). start_moonraker() brings it back."""
        self._stop("moonraker")

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(STOP_TIMEOUT_S)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return

    def close(self) -> None:
        """Stop Moonraker, klippy and fakemcu (in that order), then remove the run directory."""
        atexit.unregister(self.close)
        for name in ("moonraker", "klippy", "fakemcu"):
            self._stop(name)
        self.session.close()
        if self.run is not None:
            shutil.rmtree(self.run, ignore_errors=True)
            self.run = None
            try:
                os.unlink(self.link)
            except OSError:
                pass

    # -- waiting, and saying why it failed ------------------------------------------------------

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise KlipperSimError(f"{name} exited with {proc.returncode}:\n{self.log_tails()}")

    def _wait_for(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.check_alive()
            if time.monotonic() > deadline:
                raise KlipperSimError(f"no {what} within {timeout:.0f} s:\n{self.log_tails()}")
            time.sleep(POLL_S)

    def klippy_state(self) -> str | None:
        """Moonraker's klippy_state (ready, startup, shutdown, error, disconnected), or None if it is down."""
        try:
            response = self.session.get(self.url + "/server/info", timeout=2)
        except requests.RequestException:
            return None
        return response.json()["result"]["klippy_state"] if response.status_code == 200 else None

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until Moonraker is up and connected to a ready klippy that answers an object query."""
        self._wait_for(lambda: self.klippy_state() == "ready", "klippy_state: ready", timeout)

    def wait_klippy_state(self, state: str, timeout: float = 10.0) -> None:
        self._wait_for(lambda: self.klippy_state() == state, f"klippy_state: {state}", timeout)

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of each log, for failure messages."""
        if self.run is None:
            return "(no run directory)"
        parts = []
        for name in LOGS:
            path = self.logs / name
            if path.exists():
                parts.append(f"--- {path}\n{tail(path.read_text(errors='replace'), lines)}")
        return "\n".join(parts) or f"(no logs in {self.logs})"
