"""The printer under demo: what `octopanel demo`'s tours need of a local printer, and OctoPrint's Virtual Printer.

The tours (cli/demo.py, cli/demo_panel.py) see only DemoPrinter; each backend's sandbox sits behind one
(OctoPrintDemo here, KlipperDemo in cli/demo_klipper.py), with the steps of the command tour that make sense
on it and the checks that say whether a step's effect happened.
"""

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from octopanel.sandbox.virtualprinter import ACTIVE_FLAGS, VirtualPrinter

PRINT_MOVE = re.compile(r"G1 X\d+ F3000")  # VirtualPrinter.print_file's moves
HOTEND_OFF = re.compile(r"M104 (T0 )?S0")  # in OctoPrint's default cancel script
PRINT_MOVES = 150  # ~24 s of printing: the panel steps that need a running print take ~8 s of it
ENV_KEYS = ("OCTOPRINT_URL", "OCTOPRINT_API_KEY", "OCTOPANEL_BACKEND")


@dataclass(frozen=True)
class CliStep:
    """One command of the command tour: `words` as after `8`, `after` waits for its slow effect, `expect`
    returns what is wrong with the printer afterwards (None: its effect happened) from the lines it received."""

    words: tuple[str, ...]
    after: Callable[[], None] | None = None
    expect: Callable[[list[str]], str | None] | None = None


class DemoPrinter(Protocol):
    """A local printer the tours run on: started, told apart from others only through these calls."""

    title: str  # "OctoPrint 1.11.8 with its Virtual Printer"
    url: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def env(self) -> dict[str, str | None]:
        """The variables (ENV_KEYS) that point a command or a daemon at it; None: unset."""

    def cli_tour(self) -> tuple[CliStep, ...]: ...
    def connect(self) -> None:
        """Make it ready for the panel tour (connected, idle)."""

    def mark(self) -> float:
        """A point in what it received; pass it to settle()."""

    def settle(self, mark: float, quiet: float = 0.2, timeout: float = 3) -> list[str]:
        """The G-code lines received since mark, once nothing more arrived for `quiet` seconds."""

    def shown(self, sent: Sequence[str]) -> str:
        """The lines received, as the tours print them."""

    def status(self) -> str | None:
        """What changed since mark() beside the lines received (positions, targets), or None."""

    def start_print(self) -> None:
        """Start a print long enough for the panel's printing steps; return once it prints."""

    def print_label(self) -> str: ...
    def wait_state(self, state: str, timeout: float) -> None:
        """Until the job is `printing` (not paused) or `paused`; TimeoutError says what it is instead."""

    def is_paused(self) -> bool: ...
    def print_still(self) -> str | None:
        """None if the paused print does not move, else what moved."""

    def print_moving(self, mark: float, timeout: float) -> str | None:
        """None once the print moves again after mark, else why not."""

    def cancelled(self, mark: float) -> str | None:
        """None once the print was cancelled (since mark), else why not."""

    def keep_text(self) -> str:
        """How to use it by hand, for `--keep`."""


def connected(vp: VirtualPrinter) -> None:
    # `8connect` only asks OctoPrint to connect; the first temperature report follows 2 s later, and
    # until then OctoPrint has no readings (8gettemp would say "unknown"). A person typing waits too.
    vp.wait_state({"operational", "ready"}, timeout=20)
    vp.wait_temperatures(timeout=10)


def disconnected(vp: VirtualPrinter, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while vp.flags() and time.monotonic() < deadline:  # no flags at all: /api/printer answers 409
        time.sleep(0.05)


class OctoPrintDemo:
    """A throw-away OctoPrint 1.11.8 with its Virtual Printer; what it received is its serial.log."""

    title = "OctoPrint 1.11.8 with its Virtual Printer"

    def __init__(self) -> None:
        self.vp = VirtualPrinter()
        self.url = ""

    def start(self) -> None:
        self.vp.start()
        self.url = self.vp.url

    def stop(self) -> None:
        self.vp.stop()

    def env(self) -> dict[str, str | None]:
        return {"OCTOPRINT_URL": self.vp.url, "OCTOPRINT_API_KEY": self.vp.api_key, "OCTOPANEL_BACKEND": "octoprint"}

    def cli_tour(self) -> tuple[CliStep, ...]:
        vp = self.vp
        words = [
            ["status"],
            ["home"],
            ["settemp", "200"],
            ["setbed", "60"],
            ["alarm", "t", "60"],  # the Virtual Printer heats at 10 °C/s: a few seconds
            ["gettemp"],
            ["jog", "10", "-5", "1"],
            ["fan", "on"],
            ["fan", "off"],
            ["msg", "Hello from octopanel"],
            ["beep"],
            ["settemp", "0"],
            ["setbed", "0"],
        ]
        return (
            CliStep(("connect",), lambda: connected(vp)),
            *(CliStep(tuple(w)) for w in words),
            CliStep(("disconnect",), lambda: disconnected(vp)),
        )

    def connect(self) -> None:
        self.vp.connect()

    def mark(self) -> float:
        return self.vp.mark()

    def settle(self, mark: float, quiet: float = 0.2, timeout: float = 3) -> list[str]:
        return self.vp.settle(int(mark), quiet, timeout)

    def shown(self, sent: Sequence[str]) -> str:
        moves = sum(1 for line in sent if PRINT_MOVE.fullmatch(line))
        lines = [line for line in sent if not PRINT_MOVE.fullmatch(line)]
        text = " | ".join(lines) if lines else "(nothing)" if not moves else ""
        return text + (f"{' + ' if lines else ''}{moves} moves of the print" if moves else "")

    def status(self) -> str | None:
        return None  # serial.log shows everything OctoPrint sent

    def start_print(self) -> None:
        self.vp.print_file(PRINT_MOVES)

    def print_label(self) -> str:
        return f"a {PRINT_MOVES}-move print starts through OctoPrint's API"

    def wait_state(self, state: str, timeout: float) -> None:
        self.vp.wait_state(state, timeout=timeout, absent="paused" if state == "printing" else ())

    def is_paused(self) -> bool:
        return "paused" in self.vp.flags()

    def print_still(self) -> str | None:
        mark = self.vp.mark()
        time.sleep(0.5)
        moves = [line for line in self.vp.sent_since(mark) if PRINT_MOVE.fullmatch(line)]
        return f"the print kept moving while paused: {moves}" if moves else None

    def print_moving(self, mark: float, timeout: float) -> str | None:
        try:
            self.vp.wait_sent(int(mark), [PRINT_MOVE], timeout=timeout)
        except TimeoutError as exc:
            return str(exc)
        return None

    def cancelled(self, mark: float) -> str | None:
        try:
            self.vp.wait_state("operational", timeout=10, absent=ACTIVE_FLAGS)
            self.vp.wait_sent(int(mark), [HOTEND_OFF], timeout=5)
        except TimeoutError as exc:
            return str(exc)
        return None

    def keep_text(self) -> str:
        vp = self.vp
        if not vp.flags():  # the command tour ends disconnected, the panel tour connected
            vp.connect()
        return f"""OctoPrint keeps running with its Virtual Printer connected. In another shell:

    export OCTOPRINT_URL={vp.url}
    export OCTOPRINT_API_KEY={vp.api_key}
    8status; 8jog 0 0 5; octopanel help

Web interface: {vp.url} (user admin, password {vp.password})
serial log:    {vp.serial_log}"""
