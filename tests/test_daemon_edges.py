"""Daemon edges a user hits: a --live FIFO's writer restarting, `events` on a path, --dry-run's words, the
end of a replayed file, the repeat distance cap setting and `run --help`."""

import os
import signal
import subprocess
import sys
import time

import pytest
from daemonproc import DaemonProc, clean_env, press, rec, replay, wait_for
from evdev import ecodes as e


def test_live_fifo_writer_restarting_is_an_unplug_and_the_next_writer_is_read(tmp_path):
    """Before: the writer's close ended the daemon (exit 0), so a software keypad that restarts ended it."""
    p = DaemonProc(tmp_path, ["--live", "--dry-run"], control=False)
    try:
        p.tap(e.KEY_KP5)
        p.wait_log('"M117 panel 1"]')
        os.close(p.writer)
        p.writer = None
        p.wait_log("waiting for the next writer")
        p.writer = p._open_writer()  # succeeds only once the daemon has the FIFO open for reading again
        assert p.proc.poll() is None, p.output()
        p.tap(e.KEY_KPPLUS)
        p.tap(e.KEY_KP5)
        p.wait_log('"M117 panel 10"]')
        assert "WARNING lost keys.fifo: keys.fifo: the FIFO's writer closed it" in p.output()
        assert p.close() == 0, p.output()  # SIGTERM: a live FIFO has no end of its own
    finally:
        p.kill()


def test_a_regular_recording_still_ends_the_daemon_at_its_end_without_a_lost_warning(tmp_path):
    """Before: the normal end was logged as 'WARNING lost rec.bin: rec.bin: end of recording'."""
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text('keys:\n  KEY_KP5: "msg hello"\n')
    recording = tmp_path / "rec.bin"
    recording.write_bytes(press(e.KEY_KP5, 1) + press(e.KEY_KP5, 0))
    out = replay(recording, keymap, env=clean_env(tmp_path), timeout=30)
    assert out.returncode == 0, out.stderr
    assert "INFO rec.bin: end of recording" in out.stderr
    assert "WARNING" not in out.stderr and "lost" not in out.stderr, out.stderr


def test_dry_run_says_would_on_stdout_and_in_its_log(tmp_path):
    """Before: stdout said 'KEY_KP8 press → jog y=1' and the log 'KEY_KP8 press: jogged …', as if sent."""
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text('feedback: {beep: false, message: false, leds: "off"}\nkeys:\n  KEY_KP8: "jog y=1"\n')
    recording = tmp_path / "rec.bin"
    recording.write_bytes(press(e.KEY_KP8, 1) + press(e.KEY_KP8, 0))
    out = replay(recording, keymap, env=clean_env(tmp_path), timeout=30)
    assert out.returncode == 0, out.stderr
    assert "KEY_KP8 press → would jog y=1\n" in out.stdout, out.stdout
    assert "INFO KEY_KP8 press: would jog y=1 (dry run: nothing sent)\n" in out.stderr, out.stderr
    assert "jogged" not in out.stdout + out.stderr


def run_events(tmp_path, *args, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "octopanel", "events", *args],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=timeout,
    )


def test_events_reads_a_recording_given_as_a_path_and_ends_at_its_end(tmp_path):
    """Before: the path was taken for a device spec that nothing matched, and `events` waited for ever."""
    recording = tmp_path / "rec.bin"
    recording.write_bytes(press(e.KEY_KP5, 1) + press(e.KEY_KP5, 0) + press(e.KEY_KP8, 1))
    out = run_events(tmp_path, str(recording))
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if not line.startswith("#")]
    assert [line.split("   #")[0] for line in lines] == ["KEY_KP5: msg KEY_KP5", "KEY_KP8: msg KEY_KP8"], out.stdout


def test_events_reads_a_fifo_given_as_a_path(tmp_path):
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "octopanel", "events", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(tmp_path),
    )
    try:
        writer = None

        def connect():
            nonlocal writer
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO until events has it open
                return proc.poll() is not None
            return True

        wait_for(connect, 15, "events to open the FIFO")
        assert writer is not None, proc.communicate()
        os.write(writer, press(e.KEY_KP1, 1) + press(e.KEY_KP1, 0))
        wait_for(lambda: proc.stdout.readline().startswith("KEY_KP1: msg KEY_KP1"), 15, "the KEY_KP1 line")
        os.close(writer)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_events_without_dev_input_says_there_are_no_input_devices(tmp_path):
    """This machine has no /dev/input (input-devices.md). Before: `events` waited for ever, saying nothing."""
    if os.path.isdir("/dev/input"):
        pytest.skip("this machine has /dev/input")
    out = run_events(tmp_path, timeout=30)
    assert out.returncode == 1
    assert out.stderr.startswith("octopanel events: no input devices: /dev/input does not exist"), out.stderr
    assert "Traceback" not in out.stderr


HOLD_KEYMAP = """\
feedback: {beep: false, message: false, leds: "off"}
settings: {repeat_delay_s: 0.1, repeat_s: 0.05, max_repeat_mm: 3}
keys:
  KEY_KP8: {press: "jog y=1", repeat: "jog y=1"}
"""


def test_max_repeat_mm_caps_the_travel_of_one_hold(tmp_path):
    """A 1.5 s hold would repeat about 28 times; max_repeat_mm 3 lets 3 through after the press.
    Before: 'settings.max_repeat_mm: unknown key', exit 2."""
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text(HOLD_KEYMAP)
    t0 = time.time()
    recording = tmp_path / "hold.bin"
    recording.write_bytes(
        rec(t0, e.EV_KEY, e.KEY_KP8, 1)
        + rec(t0, e.EV_SYN, e.SYN_REPORT, 0)
        + rec(t0 + 1.5, e.EV_KEY, e.KEY_KP8, 0)
        + rec(t0 + 1.5, e.EV_SYN, e.SYN_REPORT, 0)
    )
    out = replay(recording, keymap, env=clean_env(tmp_path), timeout=30, speed=None)
    assert out.returncode == 0, out.stderr
    travel = [float(line.split("would jog y=")[1]) for line in out.stdout.splitlines() if "would jog y=" in line]
    assert sum(travel) == 4, out.stdout  # the press, then 3 mm of repeats


@pytest.mark.parametrize(
    "value, problem",
    [
        ("0", "0 is below the minimum 0.1"),
        ("1001", "1001 is above the maximum 1000"),
        ("far", "expected a number, got 'far'"),
    ],
)
def test_max_repeat_mm_is_bounded_at_load(tmp_path, value, problem):
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text(HOLD_KEYMAP.replace("max_repeat_mm: 3", f"max_repeat_mm: {value}"))
    out = subprocess.run(
        [sys.executable, "-m", "octopanel", "check", str(keymap)],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        timeout=30,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"keymap.yaml:2: settings.max_repeat_mm: {problem}" in out.stderr, out.stderr


def test_run_help_shows_the_keymap_it_would_read(tmp_path):
    """Before: '--keymap KEYMAP  keymap file (default: None)'."""
    keymap = tmp_path / "mine.yaml"
    keymap.write_text(HOLD_KEYMAP)
    out = subprocess.run(
        [sys.executable, "-m", "octopanel", "run", "--help"],
        capture_output=True,
        text=True,
        env=clean_env(tmp_path, OCTOPANEL_KEYMAP=str(keymap), COLUMNS="400"),
        timeout=30,
    )
    assert out.returncode == 0
    assert f"keymap file (default: {keymap})" in out.stdout, out.stdout
