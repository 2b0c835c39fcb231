"""The Klipper guard macros (etc/klipper/octopanel.cfg), evaluated by a real klippy, and the command installing them."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LEAKY_PREFIXES

from octopanel.sandbox.klipper import KlipperRefused
from octopanel.sandbox.klipper.config import MIN_EXTRUDE_TEMP_C, PRINT_X, PRINT_Y, PRINT_Z

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = (ROOT / "etc/klipper/octopanel.cfg").read_bytes()


def refusal(klipper, gcode):
    """Klipper's message refusing gcode; fails the test if Klipper ran it."""
    with pytest.raises(KlipperRefused) as refused:
        klipper.script(gcode)
    return refused.value.message


# -- while a print runs -------------------------------------------------------------------------


def test_during_a_real_print_the_guards_refuse_and_a_pause_lets_a_jog_through(klipper):
    klipper.start_print()
    mark = klipper.mark()
    assert refusal(klipper, "OCTOPANEL_JOG Y=10 Z=1 F=600") == "octopanel: jog refused: printer is printing"
    assert refusal(klipper, "OCTOPANEL_HOME AXES=Z") == "octopanel: home refused: printer is printing"
    assert refusal(klipper, "OCTOPANEL_EXTRUDE E=5") == "octopanel: extrude refused: printer is printing"
    assert klipper.position()[1:3] == (PRINT_Y, PRINT_Z)  # the job moves only X; a jog would have shown here
    assert klipper.state() == "printing"
    assert klipper.sent_since(mark) == [
        "OCTOPANEL_JOG Y=10 Z=1 F=600",
        "OCTOPANEL_HOME AXES=Z",
        "OCTOPANEL_EXTRUDE E=5",
    ]
    errors = [line for line in klipper.responses_since(mark) if line.startswith("!! ")]
    assert len(errors) == 3 and all("octopanel: " in line for line in errors), errors

    # Paused, octopanel jogs (actions/registry.py MOTION_OK), and so does the guard.
    klipper._ok("POST", "/printer/print/pause")
    klipper.wait_state("paused")
    klipper.script("OCTOPANEL_JOG Z=2 F=600")
    assert klipper.position()[2] == pytest.approx(PRINT_Z + 2)
    paused_at = klipper.query("virtual_sdcard")["virtual_sdcard"]["file_position"]
    klipper._ok("POST", "/printer/print/resume")
    # RESUME goes back to where PAUSE left the head, and the job's next lines run absolute again: left
    # relative, X would walk off by 20-120 mm a line and the job would stop with "Move out of range".
    deadline = time.monotonic() + 10
    while klipper.query("virtual_sdcard")["virtual_sdcard"]["file_position"] < paused_at + 2 * len("G1 X120 F6000\n"):
        assert time.monotonic() < deadline, "the job did not go on after RESUME"
        time.sleep(0.05)
    x, y, z, _ = klipper.position()
    assert (y, z) == (PRINT_Y, PRINT_Z) and x in PRINT_X and klipper.state() == "printing"

    # What the guard is for: Klipper itself slots the same jog, unguarded, between the job's moves.
    klipper.script("SAVE_GCODE_STATE NAME=t\nG91\nG1 Z1 F600\nRESTORE_GCODE_STATE NAME=t")
    assert klipper.position()[2] == PRINT_Z + 1

    # (and the sandbox's reset() ends a running job, waiting for its queued moves)
    klipper.reset()
    head = klipper.query("toolhead")["toolhead"]
    assert klipper.state() == "standby" and head["print_time"] <= head["estimated_print_time"], head


def test_after_a_failed_print_the_guards_refuse_until_the_error_is_cleared(klipper):
    """octopanel moves nothing in its "error" state (print_stats error: the job stopped on an error), nor do
    the guards; SDCARD_RESET_FILE (or a new job) clears it."""
    assert klipper.start_print(name="octopanel-bad.gcode", gcode="G90\nG1 X300 F6000\n") == "error"
    assert refusal(klipper, "OCTOPANEL_JOG Z=1") == (
        "octopanel: jog refused: printer is in error: the last print failed (SDCARD_RESET_FILE clears it)"
    )
    klipper.script("SDCARD_RESET_FILE")
    z = klipper.position()[2]
    klipper.script("OCTOPANEL_JOG Z=1")
    assert klipper.position()[2] == pytest.approx(z + 1)


# -- idle ------------------------------------------------------------------------------------------


def test_idle_jog_moves_exactly_that_far_and_restores_absolute_mode(klipper):
    klipper.script("G90\nG1 X10 Y10 Z10 F6000")
    mark = klipper.mark()
    klipper.script("OCTOPANEL_JOG X=5 Y=-3.25 Z=1.5 F=3000")
    assert klipper.position()[:3] == pytest.approx((15, 6.75, 11.5))
    assert klipper.sent_since(mark) == ["OCTOPANEL_JOG X=5 Y=-3.25 Z=1.5 F=3000"]
    move = klipper.query("gcode_move")["gcode_move"]
    assert move["absolute_coordinates"] is True and move["speed"] == pytest.approx(6000)  # G90 F6000 again
    klipper.script("G1 X50 Y40 Z5")
    assert klipper.position()[:3] == pytest.approx((50, 40, 5))


def test_a_jog_out_of_range_is_refused_before_it_changes_the_mode(klipper):
    """Before: the macro's G1 failed after its G91 ("Move out of range"), and the console stayed relative."""
    klipper.script("G90\nG1 X10 Y10 Z10 F6000")
    high = klipper.query("toolhead")["toolhead"]["axis_maximum"][2]
    assert refusal(klipper, f"OCTOPANEL_JOG Z={high}") == (
        f"octopanel: jog refused: Z would go to {10 + high:.3f}, outside 0.000..{high:.3f}"
    )
    assert klipper.position()[:3] == (10, 10, 10)
    assert klipper.query("gcode_move")["gcode_move"]["absolute_coordinates"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        ("", "give at least one of X=, Y=, Z="),
        ("X=abc", "X=abc is not a distance in mm"),
        ("Y=nan", "Y=nan is not a distance in mm"),
        ("Z=inf", "Z=inf is not a distance in mm"),
        ("X=1 F=0", "F=0 is not a feed rate in mm/min"),
        ("X=1 F=-5", "F=-5 is not a feed rate in mm/min"),
    ],
)
def test_a_jog_with_bad_values_is_refused_and_moves_nothing(klipper, args, message):
    klipper.script("G90\nG1 X10 Y10 Z10 F6000")
    assert refusal(klipper, f"OCTOPANEL_JOG {args}") == f"octopanel: jog refused: {message}"
    assert klipper.position()[:3] == (10, 10, 10)


def test_home_takes_the_axes_it_is_given(klipper):
    klipper.script("G90\nG1 X50 Y40 Z5 F6000")
    klipper.script("OCTOPANEL_HOME AXES=x")
    x, y, z, _ = klipper.position()
    assert x == pytest.approx(0, abs=0.05) and (y, z) == (40, 5)
    assert refusal(klipper, "OCTOPANEL_HOME AXES=XQ") == "octopanel: home refused: AXES=XQ: expected letters of XYZ"
    assert klipper.position()[1:3] == (40, 5)


def test_extrude_is_refused_cold_and_runs_hot_in_relative_e_only(klipper):
    message = refusal(klipper, "OCTOPANEL_EXTRUDE E=5")
    assert message.startswith("octopanel: extrude refused: extruder is at ")
    assert message.endswith(f"below its min_extrude_temp {MIN_EXTRUDE_TEMP_C:.1f} C")
    assert klipper.position()[3] == 0
    klipper.heat_extruder()
    klipper.script("OCTOPANEL_EXTRUDE E=5 F=300")
    assert klipper.position()[3] == pytest.approx(5)
    assert klipper.query("gcode_move")["gcode_move"]["absolute_extrude"] is True


@pytest.mark.parametrize("own_klipper", [{"klippy": "klipper"}], indirect=True)
def test_on_klippers_own_klippy_the_guards_work_the_same(own_klipper):
    """Most people run Klipper, not Kalico: its klippy renders the macros and parses their parameters too."""
    assert "app" not in own_klipper._ok("GET", "/printer/info")  # Kalico says app: Kalico
    own_klipper.home()
    own_klipper.script("G90\nG1 X10 Y10 Z10 F6000")
    own_klipper.script("OCTOPANEL_JOG X=5 Y=-3.25 Z=1.5 F=3000")
    assert own_klipper.position()[:3] == pytest.approx((15, 6.75, 11.5))
    assert own_klipper.query("gcode_move")["gcode_move"]["absolute_coordinates"] is True
    assert refusal(own_klipper, "OCTOPANEL_JOG X=abc") == "octopanel: jog refused: X=abc is not a distance in mm"
    assert refusal(own_klipper, "OCTOPANEL_EXTRUDE E=5").startswith("octopanel: extrude refused: extruder is at ")
    own_klipper.start_print()
    assert refusal(own_klipper, "OCTOPANEL_JOG Z=1") == "octopanel: jog refused: printer is printing"
    assert own_klipper.position()[1:3] == (PRINT_Y, PRINT_Z)


# -- octopanel install --klipper-macros -----------------------------------------------------------


def octopanel(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    return subprocess.run(
        [sys.executable, "-m", "octopanel", *map(str, args)], capture_output=True, text=True, env=env, timeout=60
    )


def test_install_writes_the_macros_and_says_which_line_to_add(tmp_path):
    out = octopanel("install", "--klipper-macros", tmp_path)
    assert out.returncode == 0, out.stderr
    written = (tmp_path / "octopanel.cfg").read_bytes()
    header, _, body = written.partition(b"\n")
    assert body == SHIPPED and hashlib.sha256(SHIPPED).hexdigest().encode() in header
    assert f"created   {tmp_path / 'octopanel.cfg'}  (macros version 1)" in out.stdout
    assert f"Add this line to {tmp_path / 'printer.cfg'}" in out.stdout and "[include octopanel.cfg]" in out.stdout
    (tmp_path / "printer.cfg").write_text("[printer]\n[include octopanel.cfg]\n")
    mtime = (tmp_path / "octopanel.cfg").stat().st_mtime_ns
    again = octopanel("install", "--klipper-macros", tmp_path)
    assert again.returncode == 0 and "kept" in again.stdout and "includes it already" in again.stdout, again
    assert (tmp_path / "octopanel.cfg").stat().st_mtime_ns == mtime


def test_install_replaces_an_older_copy_it_wrote(tmp_path):
    old_body = SHIPPED.replace(b"variable_version: 1", b"variable_version: 0")
    header = f"# written by `octopanel install --klipper-macros`; sha256 {hashlib.sha256(old_body).hexdigest()} x\n"
    (tmp_path / "octopanel.cfg").write_bytes(header.encode() + old_body)
    out = octopanel("install", "--klipper-macros", tmp_path)
    assert out.returncode == 0 and "updated" in out.stdout, out
    assert (tmp_path / "octopanel.cfg").read_bytes().partition(b"\n")[2] == SHIPPED


@pytest.mark.parametrize("edit", ["append", "own file"])
def test_install_never_overwrites_an_edited_or_foreign_file(tmp_path, edit):
    octopanel("install", "--klipper-macros", tmp_path)
    target = tmp_path / "octopanel.cfg"
    mine = target.read_bytes() + b"# my change\n" if edit == "append" else b"[gcode_macro OCTOPANEL_JOG]\n"
    target.write_bytes(mine)
    out = octopanel("install", "--klipper-macros", tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert f"{target} exists and is not the copy octopanel wrote" in out.stderr
    assert "Traceback" not in out.stderr
    assert target.read_bytes() == mine and sorted(p.name for p in tmp_path.iterdir()) == ["octopanel.cfg"]


def test_install_refuses_a_missing_directory_and_other_flags(tmp_path):
    missing = tmp_path / "nope"
    out = octopanel("install", "--klipper-macros", missing)
    assert out.returncode == 2 and not missing.exists()
    assert out.stderr.strip() == (
        f"octopanel install: --klipper-macros {missing}: no such directory; expected Klipper's config directory, "
        "the one holding printer.cfg (often ~/printer_data/config)"
    )
    both = octopanel("install", "--klipper-macros", tmp_path, "--destdir", tmp_path)
    assert both.returncode == 2 and "run --destdir" in both.stderr and not list(tmp_path.iterdir())


def test_install_says_why_it_cannot_write(tmp_path):
    (tmp_path / "octopanel.cfg").mkdir()  # in the way, and unreadable as a file
    out = octopanel("install", "--klipper-macros", tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"octopanel install: cannot write {tmp_path / 'octopanel.cfg'}: Is a directory")
