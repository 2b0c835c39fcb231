"""End to end: relative tuning steps (`8settemp +5`, `speed +10`, `babystep z=0.02`) against the real OctoPrint.

Steps count from the target OctoPrint reports, or from the factor octopanel's daemon last set (OctoPrint
reports none); the shipped keymap's NumLock layer and its Z keys while printing drive the panel tests."""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

from cmdcheck import failed, ok, requests_made, sent_by, start_print
from conftest import BIN
from daemonproc import DaemonProc, clean_env, press
from evdev import ecodes as e
from executorwait import wait_idle

from octopanel import settings as settings_mod
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.daemon.executor import Executor
from octopanel.daemon.jobs import Job
from octopanel.panel import keymap
from octopanel.panel.gesture_config import Gesture
from octopanel.panel.router import Dispatcher
from octopanel.printers.octoprint.client import Client

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = build_registry()
SETTINGS = settings_mod.load(env={})
TUNING = re.compile(r"M104 (T0 )?S|M140 S|M220 S|M221 S|M290 ")


def targets_become(printer, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = (
            printer.request("GET", "/api/printer/tool").json()["tool0"]["target"],
            printer.request("GET", "/api/printer/bed").json()["bed"]["target"],
        )
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def tuning_sent(printer, mark):
    return [re.sub(r"^M104 T0 ", "M104 ", line) for line in sent_by(printer, mark) if TUNING.match(line)]


class Panel:
    """The shipped keymap on a real client, driven by gestures as the daemon's loop would."""

    def __init__(self, printer):
        km = keymap.load(ROOT / "etc" / "keymap.yaml", REGISTRY, SETTINGS.limits)
        km.feedback["beep"] = False  # refusals are read from the results, not heard
        self.client = Client(printer.url, printer.api_key)
        self.results = []
        self.ex = Executor(
            Context(client=self.client, settings=SETTINGS),
            km.settings["stale_s"],
            on_done=lambda job, call, outcome: job is not None and job.label != "gate" and self.results.append(outcome),
        )
        self.dispatch = Dispatcher(km, REGISTRY, self.ex.ctx, self.ex)
        self.ex.start()
        assert wait_idle(self.ex, 5)

    def press(self, key, layer_key=None):
        now = time.monotonic()
        if layer_key:
            self.dispatch.gesture(Gesture("press", layer_key, now, "pad"))
        self.dispatch.gesture(Gesture("press", key, now, "pad"))
        if layer_key:
            self.dispatch.gesture(Gesture("release", layer_key, now, "pad"))

    def held(self):
        """Hold the worker on a job of its own until the returned event is set: presses queue up meanwhile."""
        gate, running = threading.Event(), threading.Event()

        def wait(state):
            running.set()
            gate.wait(5)
            return None  # nothing bound: sends nothing

        self.ex.submit(Job(resolve=wait, created=time.monotonic(), label="gate", needs_state=False))
        assert running.wait(5)
        return gate

    def texts(self):
        return [str(getattr(r, "text", r)) for r in self.results]

    def close(self):
        self.ex.stop()
        self.client.close()


# -- the CLI ----------------------------------------------------------------------------------------------


def test_steps_count_from_the_targets_octoprint_reports(run8, runop, printer):
    ok(run8("8settemp", "200"))
    ok(run8("8setbed", "60"))
    assert targets_become(printer, (200, 60)) == (200, 60)
    mark = printer.mark()
    assert ok(run8("8settemp", "+5")).stdout == "tool target 205 °C (was 200 °C, +5)\n"
    assert ok(runop("settemp", "-15")).stdout == "tool target 190 °C (was 205 °C, -15)\n"
    # Whole degrees: the Virtual Printer reads M140 S62.5 as 62 (`S([0-9]+)`), and its next temperature report
    # would make OctoPrint show that, at a moment that depends on the machine's load
    assert ok(run8("8setbed", "+3")).stdout == "bed target 63 °C (was 60 °C, +3)\n"
    assert ok(runop("setbed", "temp=-1")).stdout == "bed target 62 °C (was 63 °C, -1)\n"
    assert tuning_sent(printer, mark) == ["M104 S205", "M104 S190", "M140 S63", "M140 S62"]
    assert targets_become(printer, (190, 62)) == (190, 62)
    ok(run8("8settemp", "210"))  # the absolute form is unchanged
    assert targets_become(printer, (210, 62)) == (210, 62)


def test_a_step_past_the_limit_is_clamped_and_one_at_the_limit_or_on_a_cold_heater_refused(run8, printer, tmp_path):
    path = tmp_path / "home" / ".config" / "octopanel" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("max_tool_temp: 210\nmax_bed_temp: 70\n")
    ok(run8("8settemp", "200"))
    assert targets_become(printer, (200, 0)) == (200, 0)
    mark = printer.mark()
    proc = ok(run8("8settemp", "+15"))
    assert proc.stdout == "tool target 210 °C (was 200 °C, +15 clamped to +10 by max_tool_temp 210 °C)\n"
    assert targets_become(printer, (210, 0)) == (210, 0)
    proc = failed(
        run8("8settemp", "-v", "+5"),
        1,
        "settemp +5 refused: the hotend target is already 210 °C, at max_tool_temp 210 °C; nothing sent",
    )
    assert [r for r in requests_made(proc.stderr) if r.startswith("POST")] == []
    failed(run8("8setbed", "+2"), 1, "setbed +2 refused: the bed target is 0 (heater off)", "nothing sent")
    failed(run8("8setbed", "-2"), 1, "the bed target is 0 (heater off)")
    assert tuning_sent(printer, mark) == ["M104 S210"]
    assert targets_become(printer, (210, 0)) == (210, 0)


def test_bad_steps_exit_2_and_send_nothing(run8, runop, printer):
    mark = printer.mark()
    for proc, text in [
        (
            run8("8settemp", "-v", "+abc"),
            "settemp: temp: expected a number or a signed step such as +5 or -5, got '+abc'",
        ),
        (run8("8settemp", "-v", "++5"), "got '++5'"),
        (runop("-v", "setbed", "+-2"), "got '+-2'"),
        (run8("8settemp", "-v", "+300"), "settemp: temp: a step of +300 is larger than the limit 285"),
        (run8("8speed", "-v", "+2.5"), "speed: percent: expected a whole number, got '2.5' (in the step '+2.5')"),
        (run8("8feed", "-v", "+0"), "feed: percent: a step of '+0' changes nothing"),
        (run8("8babystep", "-v", "z=0.5"), "babystep: z: a step of +0.5 is larger than the limit 0.2"),
    ]:
        failed(proc, 2, text)
        assert requests_made(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_a_factor_step_needs_a_factor_octopanel_set(run8, printer):
    """OctoPrint reports no factor, and a command run without the daemon remembers none: refused, not guessed."""
    mark = printer.mark()
    failed(run8("8speed", "+10"), 1, "speed +10 refused: the feed rate factor is unknown (OctoPrint does not report it")
    failed(run8("8feed", "-5"), 1, "feed -5 refused: the flow factor is unknown", "nothing sent")
    assert sent_by(printer, mark) == []


def test_babystep_from_the_command_line(run8, printer):
    mark = printer.mark()
    assert ok(run8("8babystep", "z=0.02")).stdout == "babystepped z +0.02 mm\n"
    assert ok(run8("8babystep", "-0.05")).stdout == "babystepped z -0.05 mm\n"
    assert tuning_sent(printer, mark) == ["M290 Z0.02", "M290 Z-0.05"]


def test_the_daemon_remembers_the_factors_it_set_for_its_keys_and_the_fast_cli_alike(printer, tmp_path):
    """A real `octopanel run` on the shipped keymap: `8speed 100` (fast path; the caller has no API key, so
    nothing could run in-process), NumLock+7 on the keypad, then `8speed +10`: each counts from the last."""
    daemon = DaemonProc(tmp_path, keymap=(ROOT / "etc" / "keymap.yaml").read_text(), printer=printer)
    try:
        mark = printer.mark()
        env = clean_env(tmp_path, OCTOPRINT_URL=printer.url, OCTOPANEL_SOCKET=str(daemon.control))

        def run(*argv):
            return subprocess.run([str(BIN / argv[0]), *argv[1:]], env=env, capture_output=True, text=True)

        failed(run("8feed", "+5"), 1, "feed +5 refused: the flow factor is unknown")
        ok(run("8speed", "100"))
        os.write(daemon.writer, press(e.KEY_NUMLOCK, 1))
        daemon.tap(e.KEY_KP7)  # speed +10
        os.write(daemon.writer, press(e.KEY_NUMLOCK, 0))
        printer.wait_sent(mark, ["M220 S100", "M220 S110"])
        assert ok(run("8speed", "+10")).stdout == "feed rate 120 % (was 110 % as octopanel set it, +10)\n"
        assert ok(run("8speed", "-25")).stdout == "feed rate 95 % (was 120 % as octopanel set it, -25)\n"
        assert tuning_sent(printer, mark) == ["M220 S100", "M220 S110", "M220 S120", "M220 S95"]
    finally:
        daemon.close()


# -- the panel: the shipped keymap's NumLock layer ------------------------------------------------------------


def test_the_panel_steps_factors_from_what_it_set_and_merges_quick_presses(printer):
    panel = Panel(printer)
    try:
        mark = printer.mark()
        panel.press("KEY_KP7", "KEY_NUMLOCK")  # speed +10, before any factor was set: refused
        assert wait_idle(panel.ex, 5)
        assert "speed +10 refused: the feed rate factor is unknown" in panel.texts()[-1]
        panel.press("KEY_KP4", "KEY_NUMLOCK")  # speed 100
        assert wait_idle(panel.ex, 5)
        for _ in range(2):
            panel.press("KEY_KP7", "KEY_NUMLOCK")  # speed +10, one at a time
            assert wait_idle(panel.ex, 5)
        panel.press("KEY_KPASTERISK", "KEY_NUMLOCK")  # feed 100
        panel.press("KEY_KPMINUS", "KEY_NUMLOCK")  # feed -5
        assert wait_idle(panel.ex, 5)
        assert panel.texts()[-3:] == [
            "feed rate 120 % (was 110 % as octopanel set it, +10)",
            "flow rate 100 %",
            "flow rate 95 % (was 100 % as octopanel set it, -5)",
        ]
        panel.client.tool_target({"tool0": 200})
        assert targets_become(printer, (200, 0)) == (200, 0)
        gate = panel.held()
        for _ in range(5):
            panel.press("KEY_KP8", "KEY_NUMLOCK")  # settemp +5, five quick presses while the worker is busy
        gate.set()
        assert wait_idle(panel.ex, 5)
        assert panel.texts()[-1] == "tool target 225 °C (was 200 °C, +25)"
        assert tuning_sent(printer, mark) == [
            "M220 S100",
            "M220 S110",
            "M220 S120",
            "M221 S100",
            "M221 S95",
            "M104 S200",
            "M104 S225",
        ]
        assert targets_become(printer, (225, 0)) == (225, 0)
        printer.disconnect()  # a reconnected firmware starts again at 100 %: what was set is forgotten
        panel.press("KEY_KP7", "KEY_NUMLOCK")
        assert wait_idle(panel.ex, 5)
        printer.connect()
        panel.press("KEY_KP7", "KEY_NUMLOCK")
        assert wait_idle(panel.ex, 5)
        assert "speed +10 refused: the feed rate factor is unknown" in panel.texts()[-1]
    finally:
        panel.close()


def test_steps_while_printing_count_from_the_target_just_set_and_babysteps_merge(printer):
    """While printing OctoPrint shows a new target only ~0.3 s later (once the M104 went out): a second step
    right after the first must count from the first's target, not from the one still shown."""
    panel = Panel(printer)
    try:
        panel.client.tool_target({"tool0": 200})
        assert targets_become(printer, (200, 0)) == (200, 0)
        start_print(printer)
        mark = printer.mark()
        for _ in range(3):
            panel.press("KEY_KP8", "KEY_NUMLOCK")  # settemp +5
            assert wait_idle(panel.ex, 5)  # each goes out on its own: no merge
        gate = panel.held()
        for _ in range(5):
            panel.press("KEY_KP9")  # babystep z=0.02 while printing
        gate.set()
        assert wait_idle(panel.ex, 5)
        steps = panel.texts()[-4:-1]
        assert steps[0] == "tool target 205 °C (was 200 °C, +5)", steps
        # "as octopanel set it" when OctoPrint did not show the last one yet (it never did before this change)
        assert re.fullmatch(r"tool target 210 °C \(was 205 °C( as octopanel set it)?, \+5\)", steps[1]), steps
        assert re.fullmatch(r"tool target 215 °C \(was 210 °C( as octopanel set it)?, \+5\)", steps[2]), steps
        assert panel.texts()[-1] == "babystepped z +0.1 mm", panel.texts()
        assert tuning_sent(printer, mark) == ["M104 S205", "M104 S210", "M104 S215", "M290 Z0.1"]
        assert "printing" in printer.flags()
        assert targets_become(printer, (215, 0)) == (215, 0)
    finally:
        panel.close()
