"""`octopanel demo`'s panel tour: run end to end against its own Virtual Printer, and its judges on their own."""

import re

import pytest
from daemonproc import run_demo

from octopanel.cli.demo_steps import STEPS, Outcome, held_key_repeats, moved, received, refused_while_printing
from octopanel.cli.softpanel import Report, parse_report

DEMO_TIMEOUT_S = 120


@pytest.mark.octoprint  # its own, started by the demo
def test_the_panel_tour_runs_every_step_and_says_what_the_printer_received(tmp_path):
    result = run_demo(tmp_path, "--tour", "panel", timeout=DEMO_TIMEOUT_S)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.rstrip().endswith(f"All {STEPS} panel steps worked."), out
    assert "✗" not in out
    expected_in_order = [
        "[numpad 8] KEY_KP8 press   keymap: jog y={step}",
        "daemon: KEY_KP8 press: jogged y=1",
        "printer received: G91 | G0 Y1 F6000 | G90",
        "daemon: mode step: 10",
        "M117 mode step: 10",
        "printer received: G91 | G0 X10 F6000 | G90",
        "daemon: KEY_KP4 repeat: jogged x=-1",
        "daemon: KEY_KP0 double: M107 sent",
        "--- octopanel run --keymap shuttlexpress.yaml",
        "daemon: REL_DIAL rotary +1: jogged x=1",
        "M117 mode axis: y",
        "daemon: REL_DIAL rotary -1: jogged y=-1",
        "print starts",
        "daemon: KEY_KP8 press: jog refused",
        "daemon: KEY_KPENTER press: paused",
        "daemon: KEY_KPENTER press: resumed",
        "daemon: KEY_KPDOT hold: print cancelled",
    ]
    at = 0
    for text in expected_in_order:
        found = out.find(text, at)
        assert found >= 0, f"{text!r} missing (or out of order) in:\n{out[at:]}"
        at = found + len(text)
    assert out.count("  ✓") == STEPS
    assert re.search(r"M104 (T0 )?S0", out)  # the cancel reached the printer


def test_the_judges_fail_a_step_whose_gcode_did_not_arrive_or_should_not_have():
    jog = ["G91", "G0 Y1 F6000", "G90"]
    assert moved({"Y": 1.0})(Outcome(0, jog, [], None)) is None
    assert "adding up to {'Y': 1.0}" in moved({"Y": 1.0})(Outcome(0, ["G91", "G0 Y10 F6000", "G90"], [], None))
    assert moved({"Y": 1.0})(Outcome(0, ["G90", "G0 Y1 F6000"], [], None))  # absolute: not a jog
    assert received("M107")(Outcome(0, ["M106 S255"], [], None)) == "expected 'M107' to reach the printer"
    assert "should not" in received("M107", absent="M106 S255")(Outcome(0, ["M106 S255", "M107"], [], None))
    refused = Report("KEY_KP8", "press", "jog refused", ok=False)
    assert refused_while_printing(Outcome(0, ["G1 X20 F3000"], [refused], None)) is None
    assert "jog move" in refused_while_printing(Outcome(0, jog, [refused], None))
    assert "not report" in refused_while_printing(Outcome(0, [], [], None))
    one = [Report("KEY_KP4", "press", "jogged x=-1", True), Report("KEY_KP4", "repeat 1", "jogged x=-1", True)]
    assert held_key_repeats(Outcome(0, ["G91", "G0 X-1", "G90"] * 2, one, None)) is None
    assert held_key_repeats(Outcome(0, ["G91", "G0 X-1", "G90"] * 3, one, None))  # more moved than reported


def test_daemon_log_lines_become_reports():
    assert parse_report("2026-12-03 11:44:21,341 INFO KEY_KP8 press: jogged y=1") == Report(
        "KEY_KP8", "press", "jogged y=1", True
    )
    assert parse_report("2026-12-03 11:44:21,341 WARNING REL_DIAL rotary -2: jog refused: x") == Report(
        "REL_DIAL", "rotary -2", "jog refused: x", False
    )
    assert parse_report("2026-12-03 11:44:22,183 INFO mode step: 10").mode == ("step", "10")
    assert parse_report("2026-12-03 11:44:20,319 INFO OctoPrint answers; the printer is idle") is None
    assert parse_report("2026-12-03 11:44:20,319 INFO socket: status -q: Operational") is None
