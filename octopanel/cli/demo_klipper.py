"""The printer under demo on Klipper: a KlipperSim (Moonraker, Klipper's host, a simulated board), for `octopanel demo`.

What Klipper received is Moonraker's G-code log (gcode_store); a job's own lines never appear there, and a
macro's one line says little, so each step also shows what changed in Klipper's objects (toolhead position,
heater targets, fan) and is judged by that change.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any

from octopanel.cli.demo_printer import CliStep
from octopanel.sandbox.klipper import KlipperSim

PRINT_MOVES = 60  # 1-second moves: the panel steps that need a running print take ~8 s of them
STILL_S = 0.5
PANEL_START = (50.0, 50.0, 10.0)
POLL_S = 0.1
EFFECT_TIMEOUT_S = 10.0  # a fan or heater change waits behind the moves queued before it (a slow Z jog: ~4 s)
Snapshot = dict[str, Any]
NAMES = {
    "job": "job",
    "position": "toolhead",
    "homed": "homed axes",
    "extruder": "extruder target",
    "bed": "bed target",
    "fan": "fan",
}


def snapshot(sim: KlipperSim) -> Snapshot:
    status = sim.query("toolhead", "extruder", "heater_bed", "fan", "print_stats")
    head = status["toolhead"]
    return {
        "job": status["print_stats"]["state"],
        # to 0.01 mm: homing leaves Z a few µm off 0 (-0.0025), and -0.0 + 0.0 is 0.0
        "position": tuple(round(v, 2) + 0.0 for v in head["position"][:3]),
        "homed": head["homed_axes"] or "none",
        "extruder": status["extruder"]["target"],
        "bed": status["heater_bed"]["target"],
        "fan": status["fan"]["speed"],
    }


def shown_value(key: str, value: Any) -> str:
    if key == "position":
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    if key in ("extruder", "bed"):
        return f"{value:g} °C"
    return f"{value * 100:g} %" if key == "fan" else str(value)


class KlipperDemo:
    """A throw-away KlipperSim with octopanel's guard macros; the commands and the daemon reach it as backend
    moonraker, with no API key (Moonraker trusts 127.0.0.1)."""

    title = "Moonraker and Klipper on a simulated printer"

    def __init__(self, sim: KlipperSim | None = None, effect_timeout: float = EFFECT_TIMEOUT_S) -> None:
        self.sim = KlipperSim(macros=True) if sim is None else sim  # one started already: start() leaves it be
        self.url = self.sim.url
        self.effect_timeout = effect_timeout
        self.before: Snapshot = {}

    def start(self) -> None:
        if self.sim.run is None:
            self.sim.start()
        self.url = self.sim.url

    def stop(self) -> None:
        self.sim.close()

    def env(self) -> dict[str, str | None]:
        return {"OCTOPRINT_URL": self.sim.url, "OCTOPRINT_API_KEY": None, "OCTOPANEL_BACKEND": "moonraker"}

    def cli_tour(self) -> tuple[CliStep, ...]:
        # No 8connect/8disconnect (Klipper's host owns the board's connection) and no 8beep or 8alarm (M300 is
        # a macro this printer.cfg does not define): README, "Klipper (Moonraker)".
        return (
            CliStep(("status",)),
            CliStep(("home",), expect=self.becomes("homed", "xyz")),
            CliStep(("settemp", "200"), expect=self.becomes("extruder", 200.0)),
            CliStep(("setbed", "60"), expect=self.becomes("bed", 60.0)),
            CliStep(("gettemp",)),
            CliStep(("jog", "10", "5", "1"), expect=self.moved_by((10.0, 5.0, 1.0))),
            CliStep(("fan", "on"), expect=self.becomes("fan", 1.0)),
            CliStep(("fan", "off"), expect=self.becomes("fan", 0.0)),
            CliStep(("msg", "Hello from octopanel"), expect=received("M117 Hello from octopanel")),
            CliStep(("settemp", "0"), expect=self.becomes("extruder", 0.0)),
            CliStep(("setbed", "0"), expect=self.becomes("bed", 0.0)),
        )

    def becomes(self, key: str, value: Any) -> Callable[[list[str]], str | None]:
        def expect(sent: list[str]) -> str | None:
            deadline = time.monotonic() + self.effect_timeout
            while (now := snapshot(self.sim)[key]) != value and time.monotonic() < deadline:
                time.sleep(POLL_S)
            return (
                None
                if now == value
                else f"expected {NAMES[key]} {shown_value(key, value)}, it is {shown_value(key, now)}"
            )

        return expect

    def moved_by(self, delta: tuple[float, float, float]) -> Callable[[list[str]], str | None]:
        def expect(sent: list[str]) -> str | None:
            start, now = self.before["position"], snapshot(self.sim)["position"]
            moved = tuple(round(b - a, 2) + 0.0 for a, b in zip(start, now, strict=True))
            return None if moved == delta else f"expected the toolhead to move by {delta}, it moved by {moved}"

        return expect

    def connect(self) -> None:
        # Klipper's host is always connected; a fresh one is not homed, and at the origin a jog of -1 mm
        # is out of range: start the panel tour homed with the head clear of the axes' ends.
        self.sim.home()
        self.sim.script(f"G90\nG0 X{PANEL_START[0]:g} Y{PANEL_START[1]:g} Z{PANEL_START[2]:g} F6000\nM400")
        print(
            f"(the head goes to X{PANEL_START[0]:g} Y{PANEL_START[1]:g} Z{PANEL_START[2]:g}, clear of the axes' ends)\n"
        )

    def mark(self) -> float:
        self.before = snapshot(self.sim)
        return self.sim.mark()

    def settle(self, mark: float, quiet: float = 0.2, timeout: float = 3) -> list[str]:
        deadline = time.monotonic() + timeout
        sent = self.sim.sent_since(mark)
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.sim.sent_since(mark)
            if now == sent:
                break
            sent = now
        return sent

    def shown(self, sent: Sequence[str]) -> str:
        return " | ".join(sent) if sent else "(nothing)"

    def status(self) -> str | None:
        if not self.before:
            return None
        now = snapshot(self.sim)
        job = {self.before["job"], now["job"]} & {"printing", "paused"}  # then the job moves the toolhead, not us
        changes = [
            f"{NAMES[k]} {shown_value(k, self.before[k])} → {shown_value(k, v)}"
            for k, v in now.items()
            if v != self.before[k] and not (job and k == "position")
        ]
        return "; ".join(changes) if changes else "(no change in toolhead, heaters, fan)"

    def start_print(self) -> None:
        self.sim.start_print(PRINT_MOVES)

    def print_label(self) -> str:
        return f"a {PRINT_MOVES}-move print starts through Moonraker's API"

    def wait_state(self, state: str, timeout: float) -> None:
        self.sim.wait_state(state, timeout=timeout)

    def is_paused(self) -> bool:
        return self.sim.state() == "paused"

    def print_still(self) -> str | None:
        self.sim.wait_idle(timeout=10)  # the moves Klipper had queued before PAUSE finish first
        start = self.sim.live_position()
        time.sleep(STILL_S)
        now = self.sim.live_position()
        return None if now == start else f"the print kept moving while paused: {start[:3]} → {now[:3]}"

    def print_moving(self, mark: float, timeout: float) -> str | None:
        start = self.sim.live_position()
        deadline = time.monotonic() + timeout
        while self.sim.live_position() == start:
            if time.monotonic() > deadline:
                return f"the head stayed at {start[:3]} for {timeout} s after the resume"
            time.sleep(POLL_S)
        return None

    def cancelled(self, mark: float) -> str | None:
        try:
            self.sim.wait_state("cancelled", timeout=10)
        except TimeoutError as exc:
            return str(exc)
        return None

    def keep_text(self) -> str:
        return f"""Moonraker and Klipper keep running on the simulated printer. In another shell:

    export OCTOPRINT_URL={self.sim.url} OCTOPANEL_BACKEND=moonraker
    8status; 8jog 0 0 5; octopanel help

Moonraker's API: {self.sim.url}/printer/info
logs:            {self.sim.logs}"""


def received(line: str) -> Callable[[list[str]], str | None]:
    return lambda sent: None if line in sent else f"expected {line!r} to reach Klipper"
