"""Stale never means "replayed later": events judged by their real age, motion never sent into a hung OctoPrint,
feedback never holding up an action, and a keymap reload that never stalls the loop."""

import json
import logging
import os
import re
import signal
import socket
import struct
import time

import pytest
from daemonproc import DaemonProc
from evdev import InputEvent
from evdev import ecodes as e
from executorwait import wait_idle
from fakeprinter import FakePrinter
from inprocdaemon import InProcessDaemon

from octopanel import settings
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.daemon.executor import Executor
from octopanel.daemon.jobs import Job
from octopanel.errors import ConfigError
from octopanel.input.evdev_source import UNKNOWN_AGE_S, Clock
from octopanel.panel import keymap
from octopanel.panel.gesture_config import Gesture
from octopanel.panel.router import Dispatcher
from octopanel.printers.octoprint.client import Client

FMT = "llHHi"
REGISTRY = build_registry()
SETTINGS = settings.load(env={})


def event(stamp, code=e.KEY_KP8, value=1):
    sec = int(stamp)
    return InputEvent(sec, round((stamp - sec) * 1e6), e.EV_KEY, code, value)


def test_the_clock_judges_each_event_by_its_real_age_first_event_or_not():
    now, wall = [1000.0], [1.79e9]
    clock = Clock(lambda: now[0], lambda: wall[0])
    # The very first event, buffered 30 s (daemon stopped, a reload): 30 s old, not "now".
    assert clock.rebase(event(wall[0] - 30.0), "a").timestamp() == pytest.approx(970.0)
    assert clock.rebase(event(wall[0] - 15.0), "a").timestamp() == pytest.approx(985.0)
    assert clock.rebase(event(wall[0] - 0.25), "a").timestamp() == pytest.approx(999.75)
    # A writer stamping CLOCK_MONOTONIC (the benchmark's keypad) is read on that clock.
    assert clock.rebase(event(999.5), "b").timestamp() == pytest.approx(999.5)
    assert clock.rebase(event(40.0), "b").timestamp() == pytest.approx(40.0)  # a recording's old stamps stay old
    # A little ahead (USB polling, rounding) is now; far ahead of both clocks is an age nobody knows.
    assert clock.rebase(event(wall[0] + 0.2), "a").timestamp() == pytest.approx(1000.0)
    assert clock.rebase(event(wall[0] + 3600), "a").timestamp() == pytest.approx(1000.0 - UNKNOWN_AGE_S)


def rec(t, type_, code, value):
    sec = int(t)
    return struct.pack(FMT, sec, int((t - sec) * 1e6), type_, code, value)


def tap_at(t, code):
    return (
        rec(t, e.EV_KEY, code, 1)
        + rec(t, e.EV_SYN, e.SYN_REPORT, 0)
        + rec(t + 0.05, e.EV_KEY, code, 0)
        + rec(t + 0.05, e.EV_SYN, e.SYN_REPORT, 0)
    )


LIVE_KEYMAP = """\
feedback: {beep: false, message: false, leds: "off"}
settings: {stale_s: 2.0}
keys:
  KEY_KP8: {press: "jog y=1"}
  KEY_KP5: {press: "msg alive"}
"""


def test_presses_buffered_on_a_live_fifo_are_dropped_by_their_real_age(printer, tmp_path):
    """Written before the loop read them (15 s and 30 s ago, realtime stamps, the first one the first event
    ever, and one stamped in the future): dropped. Before, the first event anchored the clock and a 15 s or 30 s stamp re-anchored it: both jogged."""
    p = DaemonProc(tmp_path, keymap=LIVE_KEYMAP, printer=printer, control=False, args=("--live",))
    try:
        mark = printer.mark()
        now = time.time()
        # The first is stamped an hour ahead: its age is unknown, and it lands a day back, before the others.
        os.write(
            p.writer, tap_at(now + 3600.0, e.KEY_KP8) + tap_at(now - 30.0, e.KEY_KP8) + tap_at(now - 15.0, e.KEY_KP8)
        )
        p.tap(e.KEY_KP5)  # a fresh press: the daemon is alive and in order
        printer.wait_sent(mark, ["M117 alive"], timeout=10)
        assert p.close() == 0, p.output()
        sent = printer.sent_since(mark)
        assert not [line for line in sent if line.startswith(("G0", "G91"))], sent
        assert p.output().count("s old (stale_s=2)") == 3, p.output()
    finally:
        p.kill()


FROZEN_KEYMAP = """\
feedback: {beep: true, message: false, leds: "off"}
settings: {stale_s: 1.0}
keys:
  KEY_KP8: {press: "jog y=1", when: idle paused}
  KEY_KP6: {press: "jog x=1"}
"""


def test_a_jog_waiting_on_a_stopped_octoprint_is_judged_stale_when_it_would_be_sent(printer, tmp_path):
    """OctoPrint is stopped (SIGSTOP) as a jog is pressed; its turn comes at once and its state read hangs;
    SIGCONT 1.5 s later answers it. The jog is then 1.5 s old, over stale_s 1: judged as it would go out, it
    is dropped. Before, it was judged only when its turn came (fresh then), and jogged at SIGCONT."""
    path = tmp_path / "keymap.yaml"
    path.write_text(FROZEN_KEYMAP)
    km = keymap.load(path, REGISTRY, SETTINGS.limits)
    client = Client(printer.url, printer.api_key, read_timeout=10.0)
    ctx = Context(client=client, settings=SETTINGS)
    ex = Executor(ctx, km.settings["stale_s"], km.settings["max_outstanding_mm"])
    dispatch = Dispatcher(km, REGISTRY, ctx, ex)
    ex.on_done = lambda job, call, outcome: isinstance(outcome, Exception) and dispatch.refused(job, outcome)
    ex.start()
    try:
        assert wait_idle(ex, 5)  # the start-up state read is done
        mark = printer.mark()
        os.kill(printer.process.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        dispatch.gesture(Gesture("press", "KEY_KP8", t0, "pad"))
        while time.monotonic() < t0 + 1.5:
            time.sleep(0.01)
        os.kill(printer.process.pid, signal.SIGCONT)
        assert wait_idle(ex, 10)
        dispatch.gesture(Gesture("press", "KEY_KP6", time.monotonic(), "pad"))  # fresh, after SIGCONT: sent
        # A loaded CI box: OctoPrint, just continued, may take a while to pass the jog on to its printer.
        assert wait_idle(ex, 30), "the fresh jog never finished"
        printer.wait_sent(mark, ["G91", re.compile(r"G0 X1( F\d+)?"), "G90"], timeout=30)
        sent = printer.settle(mark)
        assert not [line for line in sent if line.startswith("G0 Y")], sent
        assert ex.stats.stale == 1
    finally:
        os.kill(printer.process.pid, signal.SIGCONT)
        ex.stop()
        client.close()


def test_feedback_queued_before_an_action_is_dropped_not_sent_first():
    """A beep waiting in front of a jog is dropped: feedback never holds up an action."""
    printer = FakePrinter()
    ex = Executor(Context(client=printer, settings=SETTINGS)).start()
    assert wait_idle(ex)
    printer.gate.clear()  # a request in flight, and the queue fills behind it
    beep, jog, msg = (REGISTRY.parse_line(line, SETTINGS.limits) for line in ("beep 80 400", "jog z=1", "msg a"))
    ex.submit(Job(resolve=lambda s: msg, created=time.monotonic(), label="msg", needs_state=False))
    time.sleep(0.05)
    ex.submit(Job(resolve=lambda s: beep, created=time.monotonic(), label="feedback", needs_state=False, feedback=True))
    ex.submit(Job(resolve=lambda s: jog, created=time.monotonic(), label="jog", needs_state=False))
    ex.submit(Job(resolve=lambda s: beep, created=time.monotonic(), label="feedback", needs_state=False, feedback=True))
    printer.gate.set()
    assert wait_idle(ex)
    ex.stop()
    assert printer.sent == [("gcode", "M117 a"), ("jog", None, None, 1.0), ("gcode", "M300 P80 S400")]


BIG_COMMENT = "# " + "x" * 78 + "\n"


def test_a_keymap_over_1_mb_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text('keys:\n  KEY_KP5: "msg a"\n' + BIG_COMMENT * 14000)
    with pytest.raises(ConfigError, match=r"keymap.yaml: the file is 1\.1 MB, over the 1 MB a keymap may be"):
        keymap.load(path, REGISTRY, SETTINGS.limits)


def test_a_reload_parses_off_the_loop_and_a_refused_one_keeps_the_old_keymap(tmp_path, caplog):
    """A ~0.9 MB keymap takes about half a second to parse: the loop answers the control socket meanwhile
    (before, it parsed in the loop and answered only after). Then a 1.1 MB one is refused; the old stays."""
    sock_path = tmp_path / "control.sock"
    d = InProcessDaemon(tmp_path, 'keys:\n  KEY_KP5: "msg old"\n', FakePrinter(), control_path=str(sock_path))
    d.start()
    try:
        deadline = time.monotonic() + 5
        while not sock_path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        old = d.daemon.dispatch.keymap
        (tmp_path / "keymap.yaml").write_text('keys:\n  KEY_KP5: "msg new"\n' + BIG_COMMENT * 11000)
        d.daemon.reload_requested = True  # what SIGHUP's handler does (no signal handlers off the main thread)
        d.daemon._wake()
        deadline = time.monotonic() + 10
        while not d.daemon.reloader.busy and d.daemon.dispatch.keymap is old:
            assert time.monotonic() < deadline, "the reload never started"
            time.sleep(0.001)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(sock_path))
            client.sendall(b"status_unknown_action\n")
            reply = json.loads(client.makefile("rb").readline())
        assert reply["ok"] is False and d.daemon.dispatch.keymap is old  # answered while the parse went on
        deadline = time.monotonic() + 10
        while d.daemon.dispatch.keymap is old:
            assert time.monotonic() < deadline, "the reload never finished"
            time.sleep(0.01)
        new = d.daemon.dispatch.keymap
        assert new.bindings[("", "KEY_KP5", "press")][0].line == "msg new"
        (tmp_path / "keymap.yaml").write_text("keys: {}\n" + BIG_COMMENT * 14000)
        caplog.set_level(logging.ERROR, logger="octopanel")
        d.daemon.reload_requested = True
        d.daemon._wake()
        # The size check refuses at once, so wait for the refusal itself: polling reloader.busy can miss it.
        deadline = time.monotonic() + 10
        while not any("reload failed" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the refused reload was never reported"
            time.sleep(0.01)
        assert "over the 1 MB a keymap may be" in caplog.text
        assert d.daemon.dispatch.keymap is new
    finally:
        d.stop()
