"""`octopanel demo --backend moonraker`: both tours end to end on their own KlipperSim, and its judges failing a
step whose effect is missing on the real Klipper."""

import re

import pytest
from daemonproc import run_demo

from octopanel.cli import demo
from octopanel.cli.demo_klipper import KlipperDemo
from octopanel.cli.demo_printer import CliStep
from octopanel.cli.demo_steps import STEPS, Outcome, moved

DEMO_TIMEOUT_S = 150


@pytest.mark.klipper  # its own, started by the demo
def test_the_klipper_tour_runs_every_step_and_says_what_klipper_received(tmp_path):
    result = run_demo(tmp_path, "--backend", "moonraker", timeout=DEMO_TIMEOUT_S)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Moonraker and Klipper on a simulated printer" in out
    cli_steps = len(KlipperDemo(effect_timeout=0).cli_tour())
    assert f"All {cli_steps} steps worked." in out, out
    assert out.rstrip().endswith(f"All {STEPS} panel steps worked."), out
    assert "✗" not in out
    assert out.count("  ✓") == cli_steps + STEPS
    for absent in ("$ 8connect", "$ 8disconnect", "$ 8beep", "$ 8alarm"):  # no Klipper meaning, or M300
        assert absent not in out
    expected_in_order = [
        "$ 8home",
        "OCTOPANEL_HOME AXES=XYZ",
        "homed axes none → xyz",
        "$ 8settemp 200",
        "extruder target 0 °C → 200 °C",
        "$ 8jog 10 5 1",
        "OCTOPANEL_JOG X=10 Y=5 Z=1",
        # homing stops a step or two past the endstop's trigger, and Klipper reports where it halted
        re.compile(r"toolhead \((-?0(\.0\d)?), (-?0(\.0\d)?), (-?0(\.0\d)?)\) → \(([\d.]+), ([\d.]+), ([\d.]+)\)"),
        "$ 8fan on",
        "fan 0 % → 100 %",
        "M117 Hello from octopanel",
        "=== The panel",
        "the head goes to X50 Y50 Z10",
        "daemon: KEY_KP8 press: jogged y=1",
        "OCTOPANEL_JOG Y=1 F=6000",
        "toolhead (50, 50, 10) → (50, 51, 10)",
        "daemon: mode step: 10",
        "daemon: KEY_KP6 press: jogged x=10",
        "toolhead (50, 51, 10) → (60, 51, 10)",
        "daemon: KEY_KP0 double: M107 sent",
        "--- octopanel run --keymap shuttlexpress.yaml",
        "daemon: REL_DIAL rotary +1: jogged x=1",
        "print starts through Moonraker",
        "daemon: KEY_KP8 press: jog refused",
        "daemon: KEY_KPENTER press: paused",
        "job printing → paused",
        "daemon: KEY_KPENTER press: resumed",
        "job paused → printing",
        "daemon: KEY_KPDOT hold: print cancelled",
        "job printing → cancelled",
    ]
    at = 0
    for text in expected_in_order:
        if isinstance(text, re.Pattern):
            match = text.search(out, at)
            assert match, f"{text.pattern!r} missing (or out of order) in:\n{out[at:]}"
            start, end = [float(v) for v in match.group(1, 3, 5)], [float(v) for v in match.group(7, 8, 9)]
            assert [round(b - a, 2) for a, b in zip(start, end, strict=True)] == [10, 5, 1], match.group(0)
            at = match.end()
            continue
        found = out.find(text, at)
        assert found >= 0, f"{text!r} missing (or out of order) in:\n{out[at:]}"
        at = found + len(text)


def test_a_command_whose_effect_is_missing_fails_the_klipper_tour(klipper, capsys, monkeypatch):
    """8status moves nothing and heats nothing: judged by a jog's or a heater's effect, it fails, exit 1."""
    printer = KlipperDemo(klipper, effect_timeout=0.5)
    monkeypatch.setenv("OCTOPRINT_URL", klipper.url)
    monkeypatch.setenv("OCTOPANEL_BACKEND", "moonraker")
    monkeypatch.delenv("OCTOPRINT_API_KEY", raising=False)
    steps = (
        CliStep(("status",), expect=printer.moved_by((10.0, 5.0, 1.0))),
        CliStep(("status",), expect=printer.becomes("extruder", 200.0)),
        CliStep(("settemp", "200"), expect=printer.becomes("extruder", 200.0)),  # this one works
        CliStep(("settemp", "0"), expect=printer.becomes("extruder", 0.0)),
    )
    monkeypatch.setattr(printer, "cli_tour", lambda: steps)
    assert demo.tour(printer) == 1
    captured = capsys.readouterr()
    assert "✗ expected the toolhead to move by (10.0, 5.0, 1.0), it moved by (0.0, 0.0, 0.0)" in captured.out
    assert "✗ expected extruder target 200 °C, it is 0 °C" in captured.out
    assert captured.out.count("  ✓") == 2
    assert "2 of 4 steps failed: status, status" in captured.err


def test_a_refused_command_fails_its_step(klipper, capsys, monkeypatch):
    printer = KlipperDemo(klipper, effect_timeout=0.5)
    monkeypatch.setenv("OCTOPRINT_URL", klipper.url)
    monkeypatch.setenv("OCTOPANEL_BACKEND", "moonraker")
    monkeypatch.delenv("OCTOPRINT_API_KEY", raising=False)
    from octopanel.cli import main

    assert demo.run_step(printer, main, CliStep(("beep",))) == "exit code 1"  # Klipper does not know M300
    assert "✗ exit code 1" in capsys.readouterr().out


def test_the_jog_judge_reads_klippers_guard_macro():
    macro = ["SAVE_GCODE_STATE NAME=octopanel_move", "OCTOPANEL_JOG X=10 Y=-5 F=6000", "RESTORE_GCODE_STATE NAME=m"]
    assert moved({"X": 10.0, "Y": -5.0})(Outcome(0, macro, [], None)) is None
    assert moved({"X": 10.0})(Outcome(0, macro, [], None))  # Y moved too
    assert "in 0 move(s)" in moved({"Y": 1.0})(Outcome(0, ["M117 OCTOPANEL_JOG Y=1"], [], None))
