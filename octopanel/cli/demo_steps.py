"""The panel tour's steps: keys pressed as a person would, and the judges of what each one caused.

A judge reads the lines the printer received and the daemon's reports, and asks the printer under demo
(cli/demo_printer.py) about the rest (paused, moving, cancelled): the same steps run on every backend.
"""

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from re import Pattern

from evdev import ecodes as e

from octopanel.cli.demo_printer import DemoPrinter
from octopanel.cli.softpanel import Report, SoftPanel
from octopanel.gcode.parse import GcodeError, parse

TAP_S = 0.05  # a quick keystroke
HOLD_S = 1.2  # longer than the shipped keymaps' hold_s (0.8 s)
DOUBLE_GAP_S = 0.1  # between the two presses of a double press (the keymap's double_s is 0.35 s)
DETENT_S = 0.05  # between two detents of a wheel turned briskly
REPORT_TIMEOUT_S = 5.0
FAN_OFF = re.compile(r"M107|M106 S0")
# Klipper's guard macro (etc/klipper/octopanel.cfg) carries a jog as one line of relative distances.
MACRO_JOG = re.compile(r"OCTOPANEL_JOG((?: [XYZF]=-?[\d.]+)+)")


@dataclass(frozen=True)
class Step:
    """One thing done on the panel: `act` presses, `done` says from the reports when the daemon has acted
    (None: watch QUIET_S), `judge` returns what went wrong (None if nothing)."""

    key: str  # the keymap's name for the key, or the wheel
    gesture: str
    shown: str  # what a person would call it
    act: Callable[[SoftPanel], None]
    done: Callable[[list[Report]], bool] | None
    judge: Callable[["Outcome"], str | None]


def tap(code: int, down_s: float = TAP_S) -> Callable[[SoftPanel], None]:
    def act(panel: SoftPanel) -> None:
        panel.key(code, 1)
        time.sleep(down_s)
        panel.key(code, 0)

    return act


def double(code: int) -> Callable[[SoftPanel], None]:
    def act(panel: SoftPanel) -> None:
        tap(code)(panel)
        time.sleep(DOUBLE_GAP_S)
        tap(code)(panel)

    return act


def wheel(detents: int) -> Callable[[SoftPanel], None]:
    def act(panel: SoftPanel) -> None:
        for _ in range(abs(detents)):
            panel.rel(e.REL_DIAL, 1 if detents > 0 else -1)
            time.sleep(DETENT_S)

    return act


def reported(key: str, gesture: str) -> Callable[[list[Report]], bool]:
    return lambda reports: any(r.key == key and r.gesture.startswith(gesture) for r in reports)


def mode_set(name: str) -> Callable[[list[Report]], bool]:
    return lambda reports: any(r.mode is not None and r.mode[0] == name for r in reports)


def jog_moves(sent: Sequence[str]) -> tuple[dict[str, float], int]:
    """{axis: mm} of the relative moves in the lines sent (G91 ... G90, or OCTOPANEL_JOG), and how many."""
    total: dict[str, float] = {}
    count, relative = 0, False

    def add(words: dict[str, float]) -> None:
        for axis in "XYZ":
            value = words.get(axis)
            if value is not None:
                total[axis] = round(total.get(axis, 0.0) + value, 6)

    for line in sent:
        macro = MACRO_JOG.fullmatch(line)
        if macro is not None:
            count += 1
            add({w[0]: float(w[2:]) for w in macro.group(1).split()})
            continue
        try:
            command = parse(line)
        except GcodeError:
            continue
        if command is None:
            continue
        if command.code in ("G90", "G91"):
            relative = command.code == "G91"
        elif command.code in ("G0", "G1") and relative:
            count += 1
            add({axis: value for axis, value in command.words.items() if value is not None})
    return total, count


@dataclass
class Outcome:
    """What one step caused: the printer's mark before it, the lines sent since, the daemon's reports."""

    mark: float
    sent: list[str]
    reports: list[Report]
    printer: DemoPrinter


def moved(expected: dict[str, float], at_least: int = 1) -> Callable[[Outcome], str | None]:
    def judge(o: Outcome) -> str | None:
        total, count = jog_moves(o.sent)
        if total == expected and count >= at_least:
            return None
        return f"expected relative moves adding up to {expected}, got {total} in {count} move(s)"

    return judge


def received(pattern: str | Pattern[str], absent: str | None = None) -> Callable[[Outcome], str | None]:
    def judge(o: Outcome) -> str | None:
        if not any(_matches(pattern, line) for line in o.sent):
            return f"expected {getattr(pattern, 'pattern', pattern)!r} to reach the printer"
        if absent is not None and absent in o.sent:
            return f"{absent!r} reached the printer, and should not have"
        return None

    return judge


def _matches(pattern: str | Pattern[str], line: str) -> bool:
    return pattern.fullmatch(line) is not None if isinstance(pattern, re.Pattern) else line == pattern


def held_key_repeats(o: Outcome) -> str | None:
    total, count = jog_moves(o.sent)
    repeats = sum(1 for r in o.reports if r.gesture.startswith("repeat"))
    reported_mm = sum(float(m) for r in o.reports for m in re.findall(r"x=(-?[\d.]+)", r.text))
    if repeats < 1 or count < 2 or total.get("X") != round(reported_mm, 6):
        return f"expected repeats: {repeats} reported ({reported_mm} mm), {count} move(s) {total} received"
    return None


def refused_while_printing(o: Outcome) -> str | None:
    total, count = jog_moves(o.sent)
    if count:
        return f"the printer received {count} jog move(s) {total} during a print"
    return None if any(not r.ok for r in o.reports) else "the daemon did not report the jog as refused"


def paused_and_still(o: Outcome) -> str | None:
    try:
        o.printer.wait_state("paused", timeout=REPORT_TIMEOUT_S)
    except TimeoutError as exc:
        return str(exc)
    return o.printer.print_still()


def still_paused(o: Outcome) -> str | None:
    if o.reports or o.sent:
        return f"a short press did something: {[r.text for r in o.reports]} {o.sent}"
    return None if o.printer.is_paused() else "the print is no longer paused"


def resumed(o: Outcome) -> str | None:
    try:
        o.printer.wait_state("printing", timeout=REPORT_TIMEOUT_S)
    except TimeoutError as exc:
        return str(exc)
    return o.printer.print_moving(o.mark, REPORT_TIMEOUT_S)


def cancelled(o: Outcome) -> str | None:
    return o.printer.cancelled(o.mark)


KEYPAD = (
    Step("KEY_KP8", "press", "numpad 8", tap(e.KEY_KP8), reported("KEY_KP8", "press"), moved({"Y": 1.0})),
    Step("KEY_KPPLUS", "press", "numpad +", tap(e.KEY_KPPLUS), mode_set("step"), received("M117 mode step: 10")),
    Step("KEY_KP6", "press", "numpad 6", tap(e.KEY_KP6), reported("KEY_KP6", "press"), moved({"X": 10.0})),
    Step("KEY_KPMINUS", "press", "numpad -", tap(e.KEY_KPMINUS), mode_set("step"), received("M117 mode step: 1")),
    Step("KEY_KP4", "repeat", f"numpad 4 held {HOLD_S} s", tap(e.KEY_KP4, HOLD_S), None, held_key_repeats),
    Step(
        "KEY_KP0",
        "double",
        "numpad 0 pressed twice",
        double(e.KEY_KP0),
        reported("KEY_KP0", "double"),
        received(FAN_OFF, absent="M106 S255"),
    ),
)
SHUTTLE = (
    Step("REL_DIAL", "rotary", "jog wheel, 3 detents", wheel(3), reported("REL_DIAL", "rotary"), moved({"X": 3.0})),
    Step("BTN_4", "press", "button 4", tap(e.BTN_4), mode_set("axis"), received("M117 mode axis: y")),
    Step(
        "REL_DIAL", "rotary", "jog wheel, 2 detents back", wheel(-2), reported("REL_DIAL", "rotary"), moved({"Y": -2.0})
    ),
)
PRINTING = (
    Step("KEY_KP8", "press", "numpad 8", tap(e.KEY_KP8), reported("KEY_KP8", "press"), refused_while_printing),
    Step(
        "KEY_KPENTER", "press", "numpad Enter", tap(e.KEY_KPENTER), reported("KEY_KPENTER", "press"), paused_and_still
    ),
    Step("KEY_KPDOT", "press", "numpad . (short press)", tap(e.KEY_KPDOT), None, still_paused),
    Step("KEY_KPENTER", "press", "numpad Enter", tap(e.KEY_KPENTER), reported("KEY_KPENTER", "press"), resumed),
    Step(
        "KEY_KPDOT",
        "hold",
        f"numpad . held {HOLD_S} s",
        tap(e.KEY_KPDOT, HOLD_S),
        reported("KEY_KPDOT", "hold"),
        cancelled,
    ),
)
STEPS = len(KEYPAD) + len(SHUTTLE) + len(PRINTING)
