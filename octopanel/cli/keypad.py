"""`octopanel keypad`: this terminal becomes the panel, a software keypad of a daemon it starts.

Bytes from the terminal decode to keypad keys (input/terminal.py), their autorepeat to key downs and ups
(input/autorepeat.py); those go as evdev events into the FIFO of `octopanel run --live` (cli/softpanel.py),
so the gestures, the keymap and the actions are the daemon's own. A status line shows the modes, the
printer's state and the last thing the daemon did.
"""

import argparse
import os
import select
import shutil
import signal
import sys
import termios
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from octopanel.cli.softpanel import Report, SoftPanel, SoftPanelError
from octopanel.errors import OctopanelError
from octopanel.input.autorepeat import LAG_S, KeyTracker
from octopanel.input.keynames import key_name
from octopanel.input.terminal import TerminalDecoder
from octopanel.panel.keymap import Keymap

STATE_POLL_S = 2.0  # how often the status line asks the daemon for the printer's state
REDRAW_S = 0.2  # the status line follows the daemon's reports at least this often
INTERRUPTED = 130


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="octopanel keypad",
        description="Use this terminal as the control panel: the keymap's keys drive `octopanel run` on a printer.",
    )
    parser.add_argument("--virtual", action="store_true", help="start a local OctoPrint Virtual Printer and use it")
    parser.add_argument("--keymap", default=None, help="keymap file (default: the one `octopanel run` reads)")
    parser.add_argument("--config", default=None, help="octopanel config file (the printer's URL and API key)")
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        raise SystemExit(2 if exc.code else 0) from None


class StatusLine:
    """Mode values, the printer's state and the daemon's last report, as one line."""

    def __init__(self, modes: dict[str, Any]) -> None:
        self.modes = {name: str(mode.default) for name, mode in modes.items()}
        self.state, self.last, self.key = "…", "", ""

    def update(self, reports: list[Report]) -> None:
        for report in reports:
            if report.mode is not None:
                self.modes[report.mode[0]] = report.mode[1]
                self.last = f"mode {report.mode[0]} {report.mode[1]}"
            else:
                self.last = f"{report.key} {report.gesture}: {'' if report.ok else 'REFUSED '}{report.text}"

    def text(self, width: int) -> str:
        parts = [" ".join(f"{n} {v}" for n, v in self.modes.items()) or "no modes", f"printer: {self.state}"]
        parts += [f"key {self.key}" if self.key else "press a key", self.last or "nothing done yet"]
        line = " | ".join(parts)
        return line if len(line) < width else line[: max(0, width - 2)] + "…"


class Keypad:
    """The terminal loop: raw mode on, bytes → keys → FIFO, status line; everything restored on the way out."""

    def __init__(self, panel: SoftPanel, keymap: Keymap, fd: int) -> None:
        self.panel, self.fd = panel, fd
        self.status = StatusLine(keymap.modes)
        self.decoder, self.tracker = TerminalDecoder(), KeyTracker()
        self._seen = panel.mark()
        self._stop = threading.Event()
        self._shown: str | None = None

    def run(self) -> int:
        saved = termios.tcgetattr(self.fd)
        poller = threading.Thread(target=self._poll_state, name="octopanel-keypad-state", daemon=True)
        try:
            _raw(self.fd, saved)
            sys.stdout.write("\x1b=")  # application keypad mode: keypad keys send SS3, told apart from digits
            poller.start()
            return self._loop()
        finally:
            self._stop.set()
            self._release_all()
            sys.stdout.write("\x1b>\r\n")  # normal keypad mode again
            sys.stdout.flush()
            termios.tcsetattr(self.fd, termios.TCSANOW, saved)

    def _loop(self) -> int:
        while not self.decoder.quit:
            if not self.panel.alive():
                raise SoftPanelError(self.panel.failure("stopped"), self.panel.verdict())
            now = time.monotonic()
            due = [d for d in (self.tracker.deadline(), self.decoder.deadline()) if d is not None]
            timeout = max(0.0, min([now + REDRAW_S, *due]) - now)
            readable, _, _ = select.select([self.fd], [], [], timeout)
            now = time.monotonic()
            if readable:
                data = os.read(self.fd, 1024)
                if not data:
                    return 0  # the terminal went away
                for code in self.decoder.feed(data, now):
                    self.tracker.key(code, now)
                    self.status.key = key_name(code)
            self.decoder.flush(now)
            for stamp, code, value in self.tracker.due(now):
                self.panel.key(code, value, stamp=stamp)  # monotonic stamps: the daemon maps them by age
            self._draw()
        return 0

    def _draw(self) -> None:
        mark = self.panel.mark()
        self.status.update(self.panel.reports(self._seen))
        self._seen = mark
        text = self.status.text(shutil.get_terminal_size().columns)
        if text != self._shown:
            sys.stdout.write("\r\x1b[K" + text)
            sys.stdout.flush()
            self._shown = text

    def _poll_state(self) -> None:
        while not self._stop.is_set():
            try:
                reply = self.panel.ask("status -q")
                self.status.state = reply.get("message") or reply.get("error") or "unknown"
            except (OSError, ValueError) as exc:
                self.status.state = f"unknown ({exc})"
            self._stop.wait(STATE_POLL_S)

    def _release_all(self) -> None:
        """A key the daemon was shown down goes up now; presses not yet handed on are dropped."""
        if self.panel.alive():
            for stamp, code, value in self.tracker.close(time.monotonic()):
                self.panel.key(code, value, stamp=stamp)


def _raw(fd: int, saved: list[Any]) -> None:
    """No echo, no line editing, no signals (Ctrl-C is a byte the loop reads), every byte at once."""
    attrs: list[Any] = [list(a) if isinstance(a, list) else a for a in saved]
    attrs[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON)
    attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM and SIGHUP leave through the same finally as q and Ctrl-C


def header(path: str, url: str | None, serial_log: "os.PathLike[str] | None") -> str:
    host = urlsplit(url or "").netloc.rpartition("@")[2] or "(no URL configured)"  # never user:password
    lines = [
        f"octopanel keypad: this terminal is the panel (keymap {path}, printer {host}).",
        "Keys: digits and the numeric keypad (NumLock on or off), arrows, Home End PgUp PgDn Ins Del, Enter,",
        "+ - * / . and Backspace. Hold a key to hold it (the terminal's autorepeat says it is still down);",
        f"a terminal reports no release, so each key reaches the panel {LAG_S:.2f} s late. q or Ctrl-C: quit.",
    ]
    if serial_log is not None:
        lines.append(f"serial log: {serial_log}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """0 after q, Ctrl-C or end of input; 1 if the printer or daemon failed; 2 for misuse (stdin no terminal)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.isatty(sys.stdin.fileno()):
        print(
            "octopanel keypad: standard input is not a terminal; run it in one (a program can drive the panel "
            "with `octopanel run --replay FIFO --live` instead)",
            file=sys.stderr,
        )
        return 2
    from octopanel import settings as settings_mod
    from octopanel.cli.panel import default_keymap, load_keymap

    path = args.keymap or default_keymap()
    vp = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _terminate) for s in (signal.SIGTERM, signal.SIGHUP)} if in_main_thread else {}
    try:
        settings = settings_mod.load({}, args.config)
        keymap = load_keymap(path, settings)[0]
        env, url = dict(os.environ), settings.url
        if args.virtual:
            from octopanel.sandbox.virtualprinter import VirtualPrinter

            print("Starting a local OctoPrint 1.11.8 with its Virtual Printer…", flush=True)
            vp = VirtualPrinter()
            vp.start()
            vp.connect()
            env.update(OCTOPRINT_URL=vp.url, OCTOPRINT_API_KEY=vp.api_key)  # the environment, never argv
            url = vp.url
        with SoftPanel(path, env, ("--config", args.config) if args.config else ()) as panel:
            print(header(path, url, vp.serial_log if vp else None), flush=True)
            return Keypad(panel, keymap, sys.stdin.fileno()).run()
    except OctopanelError as exc:
        print(f"octopanel keypad: {exc}", file=sys.stderr)
        return exc.exit_code
    except SoftPanelError as exc:
        print(f"octopanel keypad: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, RuntimeError) as exc:  # OSError: requests' errors, TimeoutError too; RuntimeError: sandbox's
        print(f"octopanel keypad: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return INTERRUPTED
    finally:
        if vp is not None:
            vp.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
