"""Relative steps without a server: the OctoPrint client's memory of what it set, merging, splitting, keymaps."""

import threading
import time

import pytest
from fakeprinter import FakeOctoPrint, FakePrinter

from octopanel import settings as settings_mod
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context, invoke
from octopanel.daemon.executor import Executor, Job
from octopanel.daemon.jobs import scale
from octopanel.errors import ConfigError, SafetyError
from octopanel.panel import keymap
from octopanel.panel.gestures import Gesture
from octopanel.panel.router import Dispatcher
from octopanel.printers.dryrun import DryRunClient
from octopanel.printers.octoprint.tuning import BLIND_PENDING_S, PENDING_S, Tuning
from octopanel.values import Step

REGISTRY = build_registry()
SETTINGS = settings_mod.load(env={})


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def report(tool, bed=0.0):
    return {"tool0": {"actual": 20.0, "target": tool}, "bed": {"actual": 20.0, "target": bed}}


# -- the OctoPrint client's memory (printers/octoprint/tuning.py) -------------------------------------------


def test_a_target_set_counts_until_octoprint_shows_it_then_the_printers_word_wins():
    clock = Clock()
    memory = Tuning(clock)
    assert memory.read(report(200.0))["tool"] == 200.0
    memory.set_target("tool", 205.0)
    clock.t += 0.1
    first = memory.read(report(200.0))  # not shown yet: OctoPrint has not sent the M104
    assert first["tool"] == 205.0 and first["remembered"] == ["tool"]
    memory.set_target("tool", 210.0)
    clock.t += 0.1
    assert memory.read(report(205.0))["tool"] == 210.0  # the first one shows: still on the way to 210
    assert memory.read(report(210.0)) == {
        "tool": 210.0,
        "bed": 0.0,
        "feedrate": None,
        "flowrate": None,
        "remembered": [],
    }
    memory.set_target("tool", 215.0)
    assert memory.read(report(180.0))["tool"] == 180.0  # someone else set 180 meanwhile: theirs wins
    memory.set_target("bed", 60.0)
    clock.t += PENDING_S
    assert memory.read(report(180.0, 0.0))["bed"] == 0.0  # never shown in PENDING_S: the printer's word
    clock.t += 10 * PENDING_S  # nothing read lately: a set's "before" is unknown, so it counts only briefly
    memory.set_target("tool", 200.0)
    clock.t += BLIND_PENDING_S / 2
    assert memory.read(report(190.0))["tool"] == 200.0
    clock.t += BLIND_PENDING_S
    assert memory.read(report(190.0))["tool"] == 190.0


def test_factors_are_known_only_as_set_and_forgotten_on_a_disconnect():
    memory = Tuning(Clock())
    assert memory.read(report(0.0))["feedrate"] is None
    memory.set_factor("feedrate", 110)
    memory.sent_gcode(["M221 S95", "M104 T1 S250", "M140 S55", "G28 ; not a factor", "!!DEBUG:x"])
    got = memory.read(report(0.0, 0.0))  # M140 S55 not shown yet; M104 T1 is another hotend
    assert (got["feedrate"], got["flowrate"], got["tool"], got["bed"]) == (110, 95, 0.0, 55.0)
    assert got["remembered"] == ["bed", "feedrate", "flowrate"]
    memory.forget()
    assert memory.read(report(0.0))["feedrate"] is None


# -- merging and the arguments of a merged call -----------------------------------------------------------------


def test_scale_multiplies_steps_exactly_and_leaves_absolute_values():
    step = scale(REGISTRY.parse_line("settemp +5", SETTINGS.limits), 5)
    assert isinstance(step.args["temp"], Step) and step.args["temp"] == 25
    assert scale(REGISTRY.parse_line("babystep z=0.02", SETTINGS.limits), 3).args["z"] == 0.06
    assert scale(REGISTRY.parse_line("settemp 200", SETTINGS.limits), 5).args["temp"] == 200
    assert not REGISTRY.parse_line("speed 100", SETTINGS.limits).mergeable
    assert REGISTRY.parse_line("speed -10", SETTINGS.limits).mergeable


KEYMAP = """\
feedback: {beep: false, message: false, leds: "off"}
keys:
  KEY_KP8: "settemp +5"
  KEY_KP2: "settemp 200"
  KEY_KP9: "babystep z=0.02"
"""


def presses(tmp_path, printer, key, count):
    """`count` quick presses of `key` queued while the worker is held, then run: what reached the printer."""
    path = tmp_path / "keymap.yaml"
    path.write_text(KEYMAP)
    km = keymap.load(path, REGISTRY, SETTINGS.limits)
    ex = Executor(Context(client=printer, settings=SETTINGS)).start()
    dispatch = Dispatcher(km, REGISTRY, ex.ctx, ex)
    gate, running = threading.Event(), threading.Event()
    ex.submit(
        Job(resolve=lambda s: running.set() or gate.wait(5) and None, created=time.monotonic(), needs_state=False)
    )
    assert running.wait(5)
    for _ in range(count):
        dispatch.gesture(Gesture("press", key, time.monotonic(), "pad"))
    gate.set()
    assert ex.wait_idle(5)
    ex.stop()
    return printer.sent


def test_quick_step_presses_merge_and_absolute_ones_do_not(tmp_path):
    printer = FakeOctoPrint()
    printer.tool_target_c = 200.0
    assert presses(tmp_path, printer, "KEY_KP8", 5) == [("tool_target", {"tool0": 225.0})]
    assert presses(tmp_path, FakeOctoPrint(), "KEY_KP2", 3) == [("tool_target", {"tool0": 200.0})] * 3


def test_merged_babysteps_go_out_whole_in_lines_of_at_most_0_2_mm(tmp_path):
    assert presses(tmp_path, FakePrinter(), "KEY_KP9", 13) == [("gcode", "M290 Z0.2", "M290 Z0.06")]


def test_a_backend_that_reports_its_factors_needs_no_factor_set_first():
    """Moonraker reports speed and flow factors: a step counts from them, said without 'as octopanel set it'."""
    printer = FakeOctoPrint()
    ctx = Context(client=printer, settings=SETTINGS)
    assert invoke(REGISTRY.parse_line("speed +10", SETTINGS.limits), ctx).text == "feed rate 110 % (was 100 %, +10)"
    assert invoke(REGISTRY.parse_line("feed -600", {**SETTINGS.limits, "max_factor": 1000}), ctx).text == (
        "flow rate 10 % (was 100 %, -600 clamped to -90 by min_factor 10 %)"
    )
    with pytest.raises(SafetyError, match="already 10 %, at min_factor 10 %; nothing sent"):
        invoke(REGISTRY.parse_line("feed -5", SETTINGS.limits), ctx)
    printer.tool_target_c = 3.0
    with pytest.raises(SafetyError, match="the step would turn the heater off, which a step never does"):
        invoke(REGISTRY.parse_line("settemp -5", SETTINGS.limits), ctx)
    printer.tool_target_c = 300.0  # set above max_tool_temp elsewhere: a +5 never lowers it
    with pytest.raises(SafetyError, match="already 300 °C, above max_tool_temp 285 °C"):
        invoke(REGISTRY.parse_line("settemp +5", SETTINGS.limits), ctx)
    assert printer.sent == [("feedrate", 110), ("flowrate", 10)]


def test_the_dry_run_steps_from_its_assumed_values():
    out = __import__("io").StringIO()
    ctx = Context(client=DryRunClient(out=out), settings=SETTINGS)
    assert invoke(REGISTRY.parse_line("speed +10", SETTINGS.limits), ctx).text == "feed rate 110 % (was 100 %, +10)"
    assert "feedrate" in out.getvalue() and "not sent" in out.getvalue()


# -- keymaps ----------------------------------------------------------------------------------------------------


def test_a_rotary_knob_may_step_a_target_but_not_set_one(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text('rotary:\n  REL_DIAL: "settemp +1"\n')
    assert keymap.load(path, REGISTRY, SETTINGS.limits).rotary["REL_DIAL"][0].mergeable
    path.write_text('rotary:\n  REL_DIAL: "settemp 200"\n')
    with pytest.raises(ConfigError, match=r"keymap.yaml:2: rotary.REL_DIAL: .*adds up per detent.*got 'settemp 200'"):
        keymap.load(path, REGISTRY, SETTINGS.limits)


def test_the_shipped_tuning_layer():
    from pathlib import Path

    km = keymap.load(Path(__file__).resolve().parent.parent / "etc" / "keymap.yaml", REGISTRY, SETTINGS.limits)
    assert km.shifts["KEY_NUMLOCK"] == "tune"
    lines = {
        key: km.lookup("tune", key, "press", "printing").line
        for key in ("KEY_KP8", "KEY_UP", "KEY_KP3", "KEY_KP7", "KEY_KPMINUS")
    }
    assert lines == {
        "KEY_KP8": "settemp +5",
        "KEY_UP": "settemp +5",
        "KEY_KP3": "setbed -2",
        "KEY_KP7": "speed +10",
        "KEY_KPMINUS": "feed -5",
    }
    assert km.lookup("", "KEY_KP9", "press", "printing").line == "babystep z=0.02"
    assert all(b.mergeable for b in km.bindings[("tune", "KEY_KP8", "press")])
    assert not any(b.mergeable for b in km.bindings[("tune", "KEY_KP4", "press")])  # speed 100
