"""`octopanel demo`'s panel tour: the daemon with the shipped keymaps, driven by a software keypad.

Each step presses keys the way a person would (a tap, a hold, a double press, wheel detents), written as
evdev events into the FIFO of a real `octopanel run --live` (cli/softpanel.py), then shows what the
daemon said it ran and what the Virtual Printer received, and judges it: a step whose G-code did not
arrive, or arrived where none should have, fails the tour.
"""

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from re import Pattern

from evdev import ecodes as e

from octopanel.cli.softpanel import Report, SoftPanel, SoftPanelError
from octopanel.datafiles import shipped_path
from octopanel.gcode.parse import GcodeError, parse
from octopanel.panel.keymap import Keymap
from octopanel.sandbox.virtualprinter import ACTIVE_FLAGS, VirtualPrinter

TAP_S = 0.05  # a quick keystroke
HOLD_S = 1.2  # longer than the shipped keymaps' hold_s (0.8 s)
DOUBLE_GAP_S = 0.1  # between the two presses of a double press (the keymap's double_s is 0.35 s)
DETENT_S = 0.05  # between two detents of a wheel turned briskly
REPORT_TIMEOUT_S = 5.0
QUIET_S = 1.0  # a step that should do nothing is watched this long
PRINT_MOVES = 150  # ~24 s of printing: the steps that need a running print take ~8 s of it
FAN_OFF = re.compile(r"M107|M106 S0")
HOTEND_OFF = re.compile(r"M104 (T0 )?S0")  # in OctoPrint's default cancel script
PRINT_MOVE = re.compile(r"G1 X\d+ F3000")  # VirtualPrinter.print_file's moves


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
    """{axis: mm} of the relative moves (G91 ... G90) in the lines sent, and how many there were."""
    total: dict[str, float] = {}
    count, relative = 0, False
    for line in sent:
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
            for axis in "XYZ":
                value = command.words.get(axis)
                if value is not None:
                    total[axis] = round(total.get(axis, 0.0) + value, 6)
    return total, count


@dataclass
class Outcome:
    """What one step caused: serial.log's mark before it, the lines sent since, the daemon's reports."""

    mark: int
    sent: list[str]
    reports: list[Report]
    vp: VirtualPrinter


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
        o.vp.wait_state("paused", timeout=REPORT_TIMEOUT_S)
    except TimeoutError as exc:
        return str(exc)
    mark = o.vp.mark()
    time.sleep(0.5)
    moves = [line for line in o.vp.sent_since(mark) if PRINT_MOVE.fullmatch(line)]
    return f"the print kept moving while paused: {moves}" if moves else None


def still_paused(o: Outcome) -> str | None:
    if o.reports or o.sent:
        return f"a short press did something: {[r.text for r in o.reports]} {o.sent}"
    return None if "paused" in o.vp.flags() else f"the print is no longer paused: {sorted(o.vp.flags())}"


def resumed(o: Outcome) -> str | None:
    try:
        o.vp.wait_state("printing", timeout=REPORT_TIMEOUT_S, absent="paused")
        o.vp.wait_sent(o.mark, [PRINT_MOVE], timeout=REPORT_TIMEOUT_S)
    except TimeoutError as exc:
        return str(exc)
    return None


def cancelled(o: Outcome) -> str | None:
    try:
        o.vp.wait_state("operational", timeout=10, absent=ACTIVE_FLAGS)
        o.vp.wait_sent(o.mark, [HOTEND_OFF], timeout=REPORT_TIMEOUT_S)
    except TimeoutError as exc:
        return str(exc)
    return None


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


def bound(keymap: Keymap, key: str, gesture: str) -> str:
    """The keymap's lines for a key's gesture (or a wheel's), as `line (when ...)` joined by ' | '."""
    from octopanel.panel.keymap_checks import WHEN

    found = keymap.rotary.get(key, ()) if gesture == "rotary" else keymap.bindings.get(("", key, gesture), ())
    out = []
    for b in found:
        words = [w for w, states in WHEN.items() if w != "any" and states <= b.when]
        out.append(b.line + ("" if b.when == WHEN["any"] else f" (when {' '.join(words)})"))
    return " | ".join(out)


def run_step(panel: SoftPanel, keymap: Keymap, vp: VirtualPrinter, step: Step) -> str | None:
    """Do one step, print it, its reports and the G-code received; return what went wrong (None: nothing)."""
    print(f"[{step.shown}] {step.key} {step.gesture}   keymap: {bound(keymap, step.key, step.gesture) or '(nothing)'}")
    mark, since = vp.mark(), panel.mark()
    step.act(panel)
    problem = None
    done = step.done
    if done is not None:
        try:
            panel.wait_line(lambda _line: done(panel.reports(since)), REPORT_TIMEOUT_S, since)
        except SoftPanelError:
            problem = f"the daemon reported no {step.key} {step.gesture} within {REPORT_TIMEOUT_S} s"
    else:
        time.sleep(QUIET_S)
    sent = vp.settle(mark, quiet=0.3, timeout=1.5)
    reports = panel.reports(since)
    for r in reports:
        print(f"  daemon: {r.key + ' ' + r.gesture + ': ' if r.key else ''}{r.text}" + ("" if r.ok else "  (refused)"))
    problem = problem or step.judge(Outcome(mark, sent, reports, vp))
    print(f"  → printer received: {shown_sent(sent)}")
    print(f"  ✗ {problem}\n" if problem else "  ✓\n", flush=True)
    return problem


def shown_sent(sent: Sequence[str]) -> str:
    moves = sum(1 for line in sent if PRINT_MOVE.fullmatch(line))
    lines = [line for line in sent if not PRINT_MOVE.fullmatch(line)]
    text = " | ".join(lines) if lines else "(nothing)" if not moves else ""
    return text + (f"{' + ' if lines else ''}{moves} moves of the print" if moves else "")


def panel_session(path: Path, steps: Sequence[Step], vp: VirtualPrinter) -> list[str]:
    """Start a daemon with the keymap at path, run the steps on it; the titles of the failed ones."""
    from octopanel.cli.panel import load_keymap

    keymap = load_keymap(str(path))[0]
    print(f"--- octopanel run --keymap {path.name}, a software keypad writing to its input FIFO ---\n", flush=True)
    with SoftPanel(path) as panel:
        panel.wait_line(lambda line: "OctoPrint answers" in line, REPORT_TIMEOUT_S)
        return [f"{s.shown} ({s.key} {s.gesture})" for s in steps if run_step(panel, keymap, vp, s) is not None]


def tour(vp: VirtualPrinter) -> int:
    """The panel tour against a started VirtualPrinter; 0 if every step worked, else 1 (and says which)."""
    print("=== The panel: keys → gestures → actions → G-code ===\n", flush=True)
    keymap, shuttle = shipped_path("etc/keymap.yaml"), shipped_path("etc/examples/shuttlexpress.yaml")
    if keymap is None or shuttle is None:
        raise SoftPanelError("this installation lacks etc/keymap.yaml or etc/examples/shuttlexpress.yaml")
    vp.connect()
    failed = panel_session(keymap, KEYPAD, vp)
    failed += panel_session(shuttle, SHUTTLE, vp)
    print(f"(a {PRINT_MOVES}-move print starts through OctoPrint's API)\n", flush=True)
    vp.print_file(PRINT_MOVES)
    failed += panel_session(keymap, PRINTING, vp)
    if failed:
        print(f"{len(failed)} of {STEPS} panel steps failed: " + ", ".join(failed))
    else:
        print(f"All {STEPS} panel steps worked.")
    return 1 if failed else 0
