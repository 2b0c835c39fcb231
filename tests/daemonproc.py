"""A real `octopanel run --replay FIFO` subprocess for tests: a fake keypad on a real fd, and its control socket."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

from conftest import BIN, LEAKY_PREFIXES
from evdev import ecodes as e

FMT = "llHHi"  # native struct input_event
KEYMAP = """\
modes:
  step: {values: [1, 10], default: 1}
feedback: {beep: false, message: false, leds: "off"}
keys:
  KEY_KP5: {press: "msg panel {step}"}
  KEY_KPPLUS: "mode step next"
"""
# Variables a developer's shell or a CI runner started by systemd may carry; a test sets its own.
SYSTEMD_VARS = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "RUNTIME_DIRECTORY",
    "CREDENTIALS_DIRECTORY",
    "INVOCATION_ID",
)


def clean_env(home, **extra):
    """The caller's environment without the developer's octopanel/OctoPrint/systemd variables, HOME=home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES) and k not in SYSTEMD_VARS}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def replay(recording, keymap, *args, env, timeout=30, speed="0", **popen):
    """`octopanel run --replay RECORDING --dry-run --no-control` to the recording's end (at --speed, or at the
    recorded pace with speed=None); the finished process, output as text."""
    pace = [] if speed is None else ["--speed", speed]
    argv = ["run", "--replay", str(recording), *pace, "--keymap", str(keymap), "--dry-run", "--no-control", *args]
    return subprocess.run(
        [sys.executable, "-m", "octopanel", *argv], capture_output=True, text=True, env=env, timeout=timeout, **popen
    )


def run_demo(tmp_path, *args, timeout):
    """`octopanel demo ARGS` with the suite's cached OctoPrint and Klipper venvs (installed once), no stdin;
    the finished process, output as text."""
    from octopanel.sandbox.octoprint_venv import cache_root

    return subprocess.run(
        [str(BIN / "octopanel"), "demo", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, OCTOPANEL_CACHE=str(cache_root())),
        timeout=timeout,
    )


def rec(t, type_, code, value):
    sec = int(t)
    return struct.pack(FMT, sec, int((t - sec) * 1e6), type_, code, value)


def press(code, value):
    now = time.time()
    return rec(now, e.EV_KEY, code, value) + rec(now, e.EV_SYN, e.SYN_REPORT, 0)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class DaemonProc:
    """`octopanel run` on a FIFO; `control` is the socket path or None (--no-control); env None removes a variable."""

    def __init__(self, tmp_path, args=(), env=None, keymap=KEYMAP, control=True, printer=None):
        self.keymap = tmp_path / "keymap.yaml"
        self.keymap.write_text(keymap)
        self.fifo = tmp_path / "keys.fifo"
        os.mkfifo(self.fifo)
        self.control = tmp_path / "control.sock" if control else None
        self.log_path = tmp_path / "daemon.log"
        self.log = open(self.log_path, "w+")
        full_env = clean_env(tmp_path)
        if printer is not None:
            full_env.update(OCTOPRINT_URL=printer.url, OCTOPRINT_API_KEY=printer.api_key)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        self.live = "--live" in args
        where = ["--control", str(self.control)] if control else ["--no-control"]
        self.proc = subprocess.Popen(
            [str(BIN / "octopanel"), "run", "--replay", str(self.fifo), "--keymap", str(self.keymap), *where, *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        self.writer = self._open_writer()
        if control:
            wait_for(lambda: self.control.exists() or self.proc.poll() is not None, 10, "the control socket")
            assert self.proc.poll() is None, self.output()

    def _open_writer(self, timeout=15):
        """The FIFO's write end, once the daemon opened the read end (fails fast if the daemon died)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the daemon never opened {self.fifo}:\n{self.output()}") from None
                time.sleep(0.02)
                continue
            os.set_blocking(fd, True)
            return fd

    def tap(self, code, hold_s=0.05):
        os.write(self.writer, press(code, 1))
        time.sleep(hold_s)
        os.write(self.writer, press(code, 0))

    def dial(self, steps):
        now = time.time()
        os.write(self.writer, rec(now, e.EV_REL, e.REL_DIAL, steps) + rec(now, e.EV_SYN, e.SYN_REPORT, 0))

    def wait_log(self, text, timeout=5.0):
        try:
            wait_for(lambda: text in self.output(), timeout, f"log line with {text!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the daemon said:\n{self.output()}") from None

    def connect(self, timeout=10):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.control))  # blocking: with a timeout set, a full backlog fails with EAGAIN
        sock.settimeout(timeout)
        return sock

    def ask(self, line, timeout=10):
        """Send one line on a fresh connection; the decoded JSON reply."""
        with self.connect(timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            return json.loads(sock.makefile("rb").readline())

    def output(self):
        self.log.flush()
        return self.log_path.read_text()

    def close(self, timeout=20):
        """End the recording; the daemon drains its queue and exits (0 expected). A --live daemon takes the
        writer's close for an unplug and waits for the next writer, so it is stopped with SIGTERM."""
        if self.writer is not None:
            os.close(self.writer)
            self.writer = None
        if self.live and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.writer is not None:
            os.close(self.writer)
            self.writer = None
        self.log.close()
