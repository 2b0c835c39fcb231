"""The whole daemon end to end: raw input_event bytes on a FIFO → `octopanel run` → real OctoPrint → serial.log."""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
from cmdcheck import failed
from daemonproc import DaemonProc, clean_env, replay
from evdev import ecodes as e
from freezeproxy import FreezeProxy

FMT = "llHHi"  # native struct input_event
KEYMAP = """\
modes:
  step: {values: [1, 10], default: 1}
feedback: {beep: false, message: false, leds: "off"}
settings: {stale_s: 2.0}
keys:
  KEY_KP8: {press: "jog y={step}", when: idle paused}
  KEY_KP7: {press: home}
  KEY_KP1: {press: "ex 5"}  # no --force: a keymap cannot carry it; the printer is made hot below
  KEY_KPPLUS: "mode step next"
  KEY_KPENTER:
    - {press: pause, when: printing}
    - {press: resume, when: paused}
  KEY_KPDOT: {hold: cancel}
  KEY_KP5: {press: "msg panel {step}"}
rotary:
  REL_DIAL: "jog z={step}"
"""


def move(axes):
    """A G0 line with any feed rate: OctoPrint adds the profile's F."""
    return re.compile(rf"G0 {axes}( F\d+)?")


def rec(t, type_, code, value):
    sec = int(t)
    return struct.pack(FMT, sec, int((t - sec) * 1e6), type_, code, value)


def syn(t):
    return rec(t, e.EV_SYN, e.SYN_REPORT, 0)


@pytest.fixture
def panel(printer, tmp_path):
    """start(keymap=..., url=...) -> a DaemonProc on the session printer (or on url, e.g. a proxy to it)."""
    panels = []

    def start(keymap=KEYMAP, url=None, args=()):
        p = DaemonProc(tmp_path, keymap=keymap, printer=printer, env={"OCTOPRINT_URL": url} if url else None, args=args)
        panels.append(p)
        return p

    yield start
    for p in panels:
        p.kill()


@pytest.mark.parametrize("live", [False, True], ids=["replay", "live"])
def test_keys_become_gcode_in_serial_log(printer, panel, live):
    """live: the FIFO is read by the loop itself, as a device node is (the benchmark's keypad)."""
    mark = printer.mark()
    p = panel(args=("--live",) if live else ())
    p.tap(e.KEY_KP8)
    printer.wait_sent(mark, ["G91", move("Y1"), "G90"], timeout=10)
    p.tap(e.KEY_KPPLUS)  # step 1 -> 10
    p.tap(e.KEY_KP8)
    printer.wait_sent(mark, [move("Y10")], timeout=10)
    p.tap(e.KEY_KP5)
    printer.wait_sent(mark, ["M117 panel 10"], timeout=10)
    assert p.close() == 0, p.output()
    sent = printer.sent_since(mark)
    assert [line for line in sent if line.startswith("G0")] == ["G0 Y1 F6000", "G0 Y10 F6000"] or [
        line.split(" F")[0] for line in sent if line.startswith("G0")
    ] == ["G0 Y1", "G0 Y10"]


def test_dial_burst_is_merged_and_conserves_distance(printer, panel):
    mark = printer.mark()
    p = panel()
    for _ in range(40):
        p.dial(1)
    for _ in range(15):
        p.dial(-1)
    assert p.close() == 0, p.output()

    def z_moves(sent):
        return [float(line.split("Z")[1].split()[0]) for line in sent if line.startswith("G0")]

    # The log trails the API by a few ms: wait for the total, and fail if it never matches exactly.
    sent = printer.wait_sent(mark, lambda sent: sum(z_moves(sent)) == 25, timeout=5)
    assert len(z_moves(sent)) < 55  # merged while requests were in flight


def test_no_motion_reaches_the_printer_while_printing_and_pause_is_stateless(printer, panel):
    printer.set_ambient(210)  # hot, so only the printing state could stop an extrusion
    printer.print_file()
    mark = printer.mark()
    p = panel()
    for code in (e.KEY_KP8, e.KEY_KP7, e.KEY_KP1):
        p.tap(code)
    p.dial(5)
    p.tap(e.KEY_KPENTER)  # pause (printing)
    printer.wait_state("paused", timeout=15)
    reply = p.ask("pause")
    assert reply["ok"] and reply["sent"] is False and "already paused" in reply["message"]
    assert p.close() == 0, p.output()
    sent = printer.sent_since(mark)
    forbidden = [line for line in sent if line.split()[0] in ("G91", "G28", "M83") or line.startswith("G0 ")]
    assert forbidden == [], sent
    assert "refused" in p.output()


@pytest.fixture
def frozen_panel(printer, panel):
    """A panel whose OctoPrint connection goes through a proxy the test can freeze (an outage)."""
    proxy = FreezeProxy(int(printer.url.rsplit(":", 1)[1]))
    yield lambda: panel(url=proxy.url), proxy
    proxy.close()


def test_presses_made_during_an_outage_are_dropped_not_replayed(printer, frozen_panel):
    start, proxy = frozen_panel
    p = start()
    assert p.ask("msg before")["ok"]  # the keep-alive connection exists
    mark = printer.mark()
    proxy.freeze()
    p.tap(e.KEY_KP5)  # its request hangs: the worker is stuck like on a hung OctoPrint
    time.sleep(0.3)
    p.tap(e.KEY_KP8)  # pressed during the outage
    time.sleep(2.5)  # longer than stale_s
    proxy.thaw()
    assert p.close() == 0
    out = p.output()
    assert "KEY_KP8 press: dropped" in out and "s old" in out, out
    sent = printer.settle(mark)
    assert "M117 panel 1" in sent  # the request in flight when it froze did complete
    assert not [line for line in sent if line.startswith("G0")], sent


def test_pause_pressed_during_an_outage_is_honoured(printer, frozen_panel):
    start, proxy = frozen_panel
    printer.print_file()
    p = start()
    assert p.ask("msg before")["ok"]
    proxy.freeze()
    p.tap(e.KEY_KP5)
    time.sleep(0.3)
    p.tap(e.KEY_KPENTER)  # pause while printing, during the outage
    time.sleep(2.5)
    proxy.thaw()
    printer.wait_state("paused", timeout=15)
    assert p.close() == 0, p.output()


def test_sighup_with_a_bad_keymap_keeps_the_old_one(printer, panel):
    p = panel()
    mark = printer.mark()
    p.tap(e.KEY_KP8)
    printer.wait_sent(mark, [move("Y1")], timeout=10)
    p.keymap.write_text(KEYMAP.replace("jog y={step}", "jgo y={step}"))
    p.proc.send_signal(signal.SIGHUP)
    p.wait_log("reload failed", timeout=10)
    assert "unknown action 'jgo' (did you mean 'jog'?)" in p.output()
    mark = printer.mark()
    p.tap(e.KEY_KP8)
    printer.wait_sent(mark, [move("Y1")], timeout=10)
    p.keymap.write_text(KEYMAP.replace("jog y={step}", "jog y=-2"))
    p.proc.send_signal(signal.SIGHUP)
    p.wait_log("keymap reloaded", timeout=10)
    mark = printer.mark()
    p.tap(e.KEY_KP8)
    printer.wait_sent(mark, [move("Y-2")], timeout=10)
    assert p.close() == 0


def test_dry_run_prints_and_sends_nothing(printer, tmp_path):
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text(KEYMAP)
    recording = tmp_path / "rec.bin"
    t = 1000.0
    recording.write_bytes(
        rec(t, e.EV_KEY, e.KEY_KP8, 1) + syn(t) + rec(t + 0.05, e.EV_KEY, e.KEY_KP8, 0) + syn(t + 0.05)
    )
    mark = printer.mark()
    out = replay(recording, keymap, env=clean_env(tmp_path), timeout=30, speed=None)
    assert out.returncode == 0, out.stderr
    assert "KEY_KP8 press → would jog y=1" in out.stdout
    assert 'POST /api/printer/printhead {"command": "jog", "y": 1}' in out.stdout
    time.sleep(0.1)
    assert printer.sent_since(mark) == []


def test_socket_rejects_garbage_and_keeps_running(printer, panel):
    p = panel()
    assert p.ask("jgo z=1") == {"ok": False, "error": "unknown action 'jgo' (did you mean 'jog'?)", "exit": 2}
    assert p.ask("settemp 999")["exit"] == 2
    assert p.ask("alarm t 50")["exit"] == 2
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(p.control))
        sock.sendall(b"\xff\xfe garbage\n")
        assert json.loads(sock.makefile("rb").readline())["ok"] is False
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(str(p.control))  # half-open: sends nothing, must not block anyone
    mark = printer.mark()
    assert p.ask("msg still here")["ok"]
    printer.wait_sent(mark, ["M117 still here"])
    idle.close()
    assert p.close() == 0


def test_keymap_path_is_reported_when_invalid_at_start(tmp_path):
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text("keys:\n  KEY_KP8: jgo y=1\n")
    env = {
        "HOME": str(tmp_path),
        "PATH": os.environ["PATH"],
        "OCTOPRINT_URL": "http://127.0.0.1:9",
        "OCTOPRINT_API_KEY": "x" * 32,
    }
    out = subprocess.run(
        [sys.executable, "-m", "octopanel", "run", "--keymap", str(keymap), "--no-control"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode == 2
    assert f"{keymap}:2: keys.KEY_KP8: unknown action 'jgo' (did you mean 'jog'?)" in out.stderr
    assert "Traceback" not in out.stderr


def test_feedback_beeps_on_refusal_and_shows_the_mode(printer, panel):
    p = panel(
        keymap=KEYMAP.replace(
            'feedback: {beep: false, message: false, leds: "off"}', 'feedback: {beep: true, message: true, leds: "off"}'
        )
    )
    mark = printer.mark()
    p.tap(e.KEY_KPPLUS)
    printer.wait_sent(mark, ["M300 P40 S2500", "M117 mode step: 10"], timeout=10)
    printer.print_file()
    mark = printer.mark()
    p.tap(e.KEY_KP7)  # home while printing: refused
    printer.wait_sent(mark, lambda sent: "M300 P80 S400" in sent, timeout=10)
    assert "G28 X0 Y0 Z0" not in printer.sent_since(mark)
    assert p.close() == 0


@pytest.mark.parametrize(
    "args, text",
    [
        (["--live"], "--live needs --replay"),
        (["--speed", "2"], "--speed needs --replay"),
        (["--replay", "{file}", "--live"], "is not a FIFO"),
        (["--replay", "{fifo}", "--live", "--speed", "0"], "--speed does not apply"),
    ],
)
def test_replay_options_misused_exit_2(runop, tmp_path, args, text):
    (tmp_path / "events.bin").write_bytes(b"")
    os.mkfifo(tmp_path / "events.fifo")
    argv = [a.format(file=tmp_path / "events.bin", fifo=tmp_path / "events.fifo") for a in args]
    failed(runop("run", "--no-control", *argv), 2, text)
