"""What the panel does with an action is decided by the registry's fields, never by the action's spelling."""

import time

import pytest
from executorwait import wait_idle
from fakeprinter import FakePrinter

from octopanel import settings as settings_mod
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.daemon.executor import Executor
from octopanel.errors import ConfigError
from octopanel.panel import keymap
from octopanel.panel.gesture_config import Gesture
from octopanel.panel.router import Dispatcher

REGISTRY = build_registry()
SETTINGS = settings_mod.load(env={})
QUOTED = """\
feedback: {beep: false, message: false, leds: "off"}
modes:
  step: {values: [1, 10]}
keys:
  KEY_KP8: "'jog' y={step}"
  KEY_KP5: "'mode' step next"
  KEY_KPENTER: "\\"pause\\""
rotary:
  REL_DIAL: "'jog' z=0.5"
"""


def panel(tmp_path, text, printer):
    path = tmp_path / "keymap.yaml"
    path.write_text(text)
    km = keymap.load(path, REGISTRY, SETTINGS.limits)
    ex = Executor(
        Context(client=printer, settings=SETTINGS), km.settings["stale_s"], km.settings["max_outstanding_mm"]
    ).start()
    return km, ex, Dispatcher(km, REGISTRY, ex.ctx, ex)


def test_a_quoted_action_name_behaves_as_the_parser_reads_it(tmp_path):
    """`'jog' y=1` parses as jog: it merges, a quoted `mode` changes the mode at once, a quoted `pause` is
    retried. Before, the panel re-derived the name with line.split()[0] ("'jog'") and failed at press time."""
    printer = FakePrinter()
    km, ex, dispatch = panel(tmp_path, QUOTED, printer)
    try:
        assert [b.action.name for b in km.bindings[("", "KEY_KP8", "press")]] == ["jog"]
        assert wait_idle(ex, 5)
        printer.gate.clear()  # OctoPrint hangs: the presses below wait in the queue, and merge there
        now = time.monotonic()
        dispatch.gesture(Gesture("press", "KEY_KP5", now, "pad"))  # the mode changes at once, not queued
        assert dispatch.panel.modes["step"] == 10
        for i in range(3):
            dispatch.gesture(Gesture("press", "KEY_KP8", now + 0.01 * i, "pad"))
        dispatch.gesture(Gesture("rotary", "REL_DIAL", now + 0.05, "wheel", 2))
        printer.gate.set()
        assert wait_idle(ex, 5)
        assert sorted(printer.sent, key=str) == sorted([("jog", None, 30.0, None), ("jog", None, None, 1.0)], key=str)
    finally:
        ex.stop()


def test_a_quoted_pause_is_retried_through_an_outage(tmp_path):
    printer = FakePrinter(state="printing")
    km, ex, dispatch = panel(tmp_path, QUOTED, printer)
    try:
        assert wait_idle(ex, 5)
        printer.unreachable = True
        dispatch.gesture(Gesture("press", "KEY_KPENTER", time.monotonic(), "pad"))
        time.sleep(0.3)
        printer.unreachable = False  # back within pause_deadline_s: the pause still lands
        assert wait_idle(ex, 10)
        assert ("pause", "pause") in printer.sent, printer.sent
    finally:
        ex.stop()


def test_an_action_that_depends_on_a_mode_is_refused_at_load(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text('modes:\n  what: {values: [jog, ex]}\nkeys:\n  KEY_KP8: "{what} 1"\n')
    with pytest.raises(
        ConfigError,
        match=r"keymap.yaml:4: keys.KEY_KP8: the action must not depend on a mode: "
        r"'jog' or 'ex' \(with what=ex\)",
    ):
        keymap.load(path, REGISTRY, SETTINGS.limits)


def test_the_behaviour_fields_are_where_the_panel_reads_them():
    """Pins which actions merge (and which parameters scale onto which axis), change modes, and are retried."""
    fields = {a.name: (a.moves, a.panel_mode, a.retries) for a in REGISTRY}
    assert {n: f[0] for n, f in fields.items() if f[0]} == {
        "jog": (("x", "x"), ("y", "y"), ("z", "z")),
        "ex": (("amount", "e"),),
    }
    assert {n for n, f in fields.items() if f[1]} == {"mode"}
    assert {n for n, f in fields.items() if f[2]} == {"pause"}
    jog = REGISTRY.get("jog")
    assert jog.axes_of({"x": 0, "z": -1.5}) == {"x": 0.0, "z": -1.5}  # x=0 is a move of nothing, still named
