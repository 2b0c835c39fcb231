"""A software keypad: `octopanel run --replay FIFO --live` started as a child, this process writing its events.

The daemon reads the FIFO as it reads a USB keypad's event node (input/replay.py, live): the same gestures,
keymap, executor and printer client, nothing re-implemented. What it did comes back as its log lines,
parsed here into reports; the control socket answers questions such as the printer's state.
"""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from evdev import ecodes

from octopanel.daemon import protocol
from octopanel.input.replay import NATIVE_FORMAT

START_TIMEOUT_S = 20.0  # the daemon's start: Python, the keymap, the first state request
STOP_TIMEOUT_S = 5.0
ASK_TIMEOUT_S = 10.0
# The child is no service of its own: a keypad run from inside a systemd unit must not report its daemon's
# READY and STATUS as the unit's, nor ping the unit's watchdog.
SERVICE_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
KEEP_LINES = 5000  # of the daemon's log, for reports: a keypad left open for days must not grow without end
LOG_LINE = re.compile(r"^\S+ \S+ (INFO|WARNING|ERROR) (.*)$")  # cli/panel.py's setup_logging format
# The daemon's words for what a gesture did: "KEY_KP8 press: jogged y=1" (daemon/loop.py, _done) or, when
# refused, the same label with the reason (panel/router.py, refused); "mode step: 10" for a mode change.
GESTURE_REPORT = re.compile(r"^((?:KEY|BTN|REL)_\w+) (\w+)((?: [+-]\d+)?): (.*)$")
MODE_REPORT = re.compile(r"^mode (\w+): (.*)$")


class SoftPanelError(RuntimeError):
    """The daemon would not start, or stopped; the message carries what it said, exit_code its verdict
    (2: it refused its configuration or keymap; 1 otherwise)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Report:
    """One thing the daemon said it did: `key` and `gesture` ('' for a mode change), its text, and whether
    it worked (INFO) or was refused (WARNING)."""

    key: str
    gesture: str
    text: str
    ok: bool
    mode: tuple[str, str] | None = None


def parse_report(line: str) -> Report | None:
    """The Report in one daemon log line, or None for any other line."""
    match = LOG_LINE.match(line)
    if match is None:
        return None
    level, message = match.groups()
    mode = MODE_REPORT.match(message)
    if mode is not None:
        return Report("", "", message, level == "INFO", (mode.group(1), mode.group(2)))
    gesture = GESTURE_REPORT.match(message)
    if gesture is None:
        return None
    key, kind, steps, text = gesture.groups()
    return Report(key, kind + steps, text, level == "INFO")


class SoftPanel:
    """The daemon child and its FIFO; a context manager. `env` is the child's environment (the printer's
    URL and key go there, never on its command line, where every user could read them through ps)."""

    def __init__(
        self, keymap: str | os.PathLike[str], env: Mapping[str, str] | None = None, args: Sequence[str] = ()
    ) -> None:
        self.keymap, self.env, self.args = str(keymap), env, tuple(args)
        self.dir: str | None = None
        self.fifo = self.control = ""
        self.proc: subprocess.Popen[str] | None = None
        self.writer = -1
        self.lines: list[str] = []  # the daemon's log lines from number self._base on
        self._base = 0
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> "SoftPanel":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> "SoftPanel":
        self.dir = tempfile.mkdtemp(prefix="octopanel-keypad-")
        self.fifo, self.control = os.path.join(self.dir, "keys.fifo"), os.path.join(self.dir, "control.sock")
        os.mkfifo(self.fifo, 0o600)
        command = [sys.executable, "-m", "octopanel", "run", "--replay", self.fifo, "--live"]
        command += ["--keymap", self.keymap, "--control", self.control, *self.args]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={k: v for k, v in (os.environ if self.env is None else self.env).items() if k not in SERVICE_VARS},
            text=True,
            start_new_session=True,  # the terminal's Ctrl-C is ours to handle: stop() ends the child
        )
        self._reader = threading.Thread(target=self._read_log, name="octopanel-keypad-log", daemon=True)
        self._reader.start()
        try:
            self._open_writer()  # once it opens, the daemon's loop reads the FIFO like a device node
        except BaseException:
            self.stop()
            raise
        return self

    def _open_writer(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.writer = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # ENXIO: the daemon has not opened the FIFO yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SoftPanelError(self.failure("did not start"), self.verdict()) from None
                time.sleep(0.02)
        os.set_blocking(self.writer, True)

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                if len(self.lines) > KEEP_LINES:
                    drop = len(self.lines) - KEEP_LINES // 2
                    del self.lines[:drop]
                    self._base += drop
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def verdict(self) -> int:
        """2 if the daemon exited as for a usage or configuration error, else 1."""
        return 2 if self.proc is not None and self.proc.poll() == 2 else 1

    def failure(self, what: str) -> str:
        code = self.proc.poll() if self.proc is not None else None
        said = "\n".join(self.lines[-10:]) or "(nothing)"
        return f"the panel daemon {what}" + (f" (exit code {code})" if code is not None else "") + f"; it said:\n{said}"

    # -- input ------------------------------------------------------------------------------------------

    def events(self, events: Iterable[tuple[float | None, int, int, int]]) -> None:
        """Write (stamp or None, type, code, value) events, then a SYN_REPORT; None stamps with the clock now.

        One write of whole records (input/replay.py: at most PIPE_BUF at a time)."""
        records = []
        stamp = time.time()
        for when, type_, code, value in events:
            stamp = time.time() if when is None else when
            records.append(_record(stamp, type_, code, value))
        records.append(_record(stamp, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
        os.write(self.writer, b"".join(records))

    def key(self, code: int, value: int, stamp: float | None = None) -> None:
        self.events([(stamp, ecodes.EV_KEY, code, value)])

    def rel(self, code: int, value: int) -> None:
        self.events([(None, ecodes.EV_REL, code, value)])

    # -- what the daemon said ---------------------------------------------------------------------------

    def mark(self) -> int:
        """The number of log lines so far: pass it to reports() or wait_line() to see only later ones."""
        with self._cond:
            return self._base + len(self.lines)

    def _since(self, mark: int) -> list[str]:
        return self.lines[max(0, mark - self._base) :]

    def reports(self, since: int = 0) -> list[Report]:
        with self._cond:
            lines = self._since(since)
        return [r for r in map(parse_report, lines) if r is not None]

    def wait_line(self, predicate: Callable[[str], bool], timeout: float, since: int = 0) -> str:
        """The first log line from `since` on that satisfies predicate; SoftPanelError after timeout or exit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._since(since):
                    if predicate(line):
                        return line
                since = self._base + len(self.lines)
                left = deadline - time.monotonic()
                ended = self.proc is None or (self.proc.poll() is not None and not self._reader_alive())
                if left <= 0 or ended:
                    raise SoftPanelError(self.failure(f"gave no such report within {timeout} s"))
                self._cond.wait(min(left, 0.1))

    def ask(self, line: str, timeout: float = ASK_TIMEOUT_S) -> Any:
        """One action line on the control socket; the daemon's JSON reply (daemon/protocol.py)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.control)
            sock.sendall(line.encode() + b"\n")
            return protocol.decode(sock.makefile("rb").readline() or b"{}")

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and delete the FIFO and socket."""
        if self.writer >= 0:
            os.close(self.writer)
            self.writer = -1
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _record(stamp: float, type_: int, code: int, value: int) -> bytes:
    sec = int(stamp)
    return struct.pack(NATIVE_FORMAT, sec, int((stamp - sec) * 1e6), type_, code, value)
