"""`octopanel demo`'s panel tour: the daemon with the shipped keymaps, driven by a software keypad.

Each step (cli/demo_steps.py) presses keys the way a person would (a tap, a hold, a double press, wheel
detents), written as evdev events into the FIFO of a real `octopanel run --live` (cli/softpanel.py), then
shows what the daemon said it ran and what the printer under demo received, and judges it: a step whose
G-code did not arrive, or arrived where none should have, fails the tour.
"""

import time
from collections.abc import Sequence
from pathlib import Path

from octopanel.cli.demo_printer import DemoPrinter
from octopanel.cli.demo_steps import KEYPAD, PRINTING, REPORT_TIMEOUT_S, SHUTTLE, STEPS, Outcome, Step
from octopanel.cli.softpanel import SoftPanel, SoftPanelError
from octopanel.datafiles import shipped_path
from octopanel.panel.keymap import Keymap

QUIET_S = 1.0  # a step that should do nothing is watched this long


def bound(keymap: Keymap, key: str, gesture: str) -> str:
    """The keymap's lines for a key's gesture (or a wheel's), as `line (when ...)` joined by ' | '."""
    from octopanel.panel.keymap_checks import WHEN

    found = keymap.rotary.get(key, ()) if gesture == "rotary" else keymap.bindings.get(("", key, gesture), ())
    out = []
    for b in found:
        words = [w for w, states in WHEN.items() if w != "any" and states <= b.when]
        out.append(b.line + ("" if b.when == WHEN["any"] else f" (when {' '.join(words)})"))
    return " | ".join(out)


def run_step(panel: SoftPanel, keymap: Keymap, printer: DemoPrinter, step: Step) -> str | None:
    """Do one step, print it, its reports and the G-code received; return what went wrong (None: nothing)."""
    print(f"[{step.shown}] {step.key} {step.gesture}   keymap: {bound(keymap, step.key, step.gesture) or '(nothing)'}")
    mark, since = printer.mark(), panel.mark()
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
    sent = printer.settle(mark, quiet=0.3, timeout=1.5)
    reports = panel.reports(since)
    for r in reports:
        print(f"  daemon: {r.key + ' ' + r.gesture + ': ' if r.key else ''}{r.text}" + ("" if r.ok else "  (refused)"))
    problem = problem or step.judge(Outcome(mark, sent, reports, printer))
    print(f"  → printer received: {printer.shown(sent)}")
    status = printer.status()
    if status is not None:
        print(f"  → printer state: {status}")
    print(f"  ✗ {problem}\n" if problem else "  ✓\n", flush=True)
    return problem


def panel_session(path: Path, steps: Sequence[Step], printer: DemoPrinter) -> list[str]:
    """Start a daemon with the keymap at path, run the steps on it; the titles of the failed ones."""
    from octopanel.cli.panel import load_keymap

    keymap = load_keymap(str(path))[0]
    print(f"--- octopanel run --keymap {path.name}, a software keypad writing to its input FIFO ---\n", flush=True)
    with SoftPanel(path) as panel:
        panel.wait_line(lambda line: " answers; the printer is " in line, REPORT_TIMEOUT_S)
        return [f"{s.shown} ({s.key} {s.gesture})" for s in steps if run_step(panel, keymap, printer, s) is not None]


def tour(printer: DemoPrinter) -> int:
    """The panel tour on a started printer; 0 if every step worked, else 1 (and says which)."""
    print("=== The panel: keys → gestures → actions → G-code ===\n", flush=True)
    keymap, shuttle = shipped_path("etc/keymap.yaml"), shipped_path("etc/examples/shuttlexpress.yaml")
    if keymap is None or shuttle is None:
        raise SoftPanelError("this installation lacks etc/keymap.yaml or etc/examples/shuttlexpress.yaml")
    printer.connect()
    failed = panel_session(keymap, KEYPAD, printer)
    failed += panel_session(shuttle, SHUTTLE, printer)
    print(f"({printer.print_label()})\n", flush=True)
    printer.start_print()
    failed += panel_session(keymap, PRINTING, printer)
    if failed:
        print(f"{len(failed)} of {STEPS} panel steps failed: " + ", ".join(failed))
    else:
        print(f"All {STEPS} panel steps worked.")
    return 1 if failed else 0
