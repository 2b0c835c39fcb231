"""The Klipper sandbox itself: a real Moonraker and klippy on fakemcu, what Klipper was sent, reset, restarts."""

import pytest
import requests

from octopanel.sandbox.klipper import KlipperRefused
from octopanel.sandbox.klipper.config import PRINT_X, PRINT_Y, PRINT_Z


def test_ready_with_the_guard_macros_loaded(klipper):
    assert klipper.klippy_state() == "ready"
    info = klipper._ok("GET", "/server/info")
    assert info["moonraker_version"].startswith("v0.11.0") or "0.11.0" in info["moonraker_version"], info
    assert {"gcode_macro OCTOPANEL_JOG", "gcode_macro OCTOPANEL_HOME", "gcode_macro OCTOPANEL_EXTRUDE"} <= set(
        klipper.objects()
    )
    assert klipper.query("gcode_macro OCTOPANEL_JOG") == {"gcode_macro OCTOPANEL_JOG": {"version": 1}}


def test_scripts_show_up_in_sent_since_line_by_line(klipper):
    mark = klipper.mark()
    klipper.script("M117 hello\nM117 world")
    assert klipper.sent_since(mark) == ["M117 hello", "M117 world"]
    assert klipper.sent_since(klipper.mark()) == []


def test_a_refused_script_carries_klippers_message(klipper):
    mark = klipper.mark()
    with pytest.raises(KlipperRefused) as refused:
        klipper.script("G1 X300 F6000")
    assert refused.value.message.startswith("Move out of range: 300.000")
    assert klipper.sent_since(mark) == ["G1 X300 F6000"]
    assert any(line.startswith("!! Move out of range") for line in klipper.responses_since(mark))


def test_g28_homes_and_moves_the_head_back(klipper):
    klipper.script("G90\nG1 X50 Y60 Z2 F6000")
    assert klipper.position()[:3] == (50, 60, 2)  # where the moves end, at once
    klipper.wait_idle()
    assert klipper.live_position()[:3] == pytest.approx((50, 60, 2))  # where the head is, once there
    klipper.script("M84")  # motors off: Klipper forgets the homing
    assert klipper.query("toolhead")["toolhead"]["homed_axes"] == ""
    klipper.script("G28")
    assert klipper.query("toolhead")["toolhead"]["homed_axes"] == "xyz"
    # position_endstop 0 and no retract (config.py), give or take a step or two past the trigger
    assert klipper.position()[:3] == pytest.approx((0, 0, 0), abs=0.05)


def test_m104_sets_a_target_and_reset_clears_it(klipper):
    klipper.script("M104 S50\nM140 S40")
    status = klipper.query("extruder", "heater_bed")
    assert (status["extruder"]["target"], status["heater_bed"]["target"]) == (50, 40)
    klipper.reset()
    status = klipper.query("extruder", "heater_bed")
    assert (status["extruder"]["target"], status["heater_bed"]["target"]) == (0, 0)


def test_reset_undoes_factors_fan_and_relative_mode(klipper):
    klipper.script("M220 S150\nM221 S90\nM106 S128\nG91\nM83\nM400")
    klipper.reset()
    status = klipper.query("gcode_move", "fan")
    move = status["gcode_move"]
    assert (move["speed_factor"], move["extrude_factor"], status["fan"]["speed"]) == (1, 1, 0)
    assert move["absolute_coordinates"] and move["absolute_extrude"]


def test_a_print_runs_to_complete_and_reset_clears_it(klipper):
    # Klipper says "complete" once it has read the last line, while the moves still run.
    assert klipper.start_print(n_moves=1, name="octopanel-short.gcode") in ("printing", "complete")
    assert klipper.query("print_stats")["print_stats"]["filename"] == "octopanel-short.gcode"
    assert klipper.wait_state("complete", timeout=30) == "complete"
    assert klipper.position()[:3] == (PRINT_X[1], PRINT_Y, PRINT_Z)
    klipper.reset()
    assert klipper.state() == "standby"


def test_moonraker_restarts_on_the_same_port_while_klippy_runs_on(klipper):
    url = klipper.url
    klipper.stop_moonraker()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/server/info", timeout=2)
    klipper.start_moonraker()
    assert klipper.url == url and klipper.klippy_state() == "ready"
    assert klipper.query("toolhead")["toolhead"]["homed_axes"] == "xyz"  # the same klippy: still homed
    klipper.stop_moonraker()
    klipper.reset()  # a test that stopped Moonraker and failed: the next test's reset starts it again
    assert klipper.url == url and klipper.klippy_state() == "ready"


@pytest.mark.parametrize("own_klipper", [{"macros": False}], indirect=True)
def test_without_macros_then_emergency_stop_and_firmware_restart(own_klipper):
    assert not [name for name in own_klipper.objects() if "OCTOPANEL" in name.upper()]
    # An unknown command is no error to Klipper: HTTP 200, a console line, nothing done. So a backend must
    # look for the macros (objects/list) before it relies on them.
    mark = own_klipper.mark()
    own_klipper.script("OCTOPANEL_JOG X=1")
    assert own_klipper.responses_since(mark) == ['// Unknown command:"OCTOPANEL_JOG"']
    own_klipper.emergency_stop()
    assert own_klipper.klippy_state() == "shutdown"
    with pytest.raises(KlipperRefused):
        own_klipper.script("M104 S50")
    own_klipper.firmware_restart()
    assert own_klipper.klippy_state() == "ready"
    own_klipper.script("M104 S50")
    assert own_klipper.query("extruder")["extruder"]["target"] == 50


def test_a_message_with_a_newline_comes_whole(klipper):
    """Moonraker says "Unknown" for it (no newline fits an HTTP status line); the text is in the traceback."""
    with pytest.raises(KlipperRefused) as refusal:
        klipper.script("G1 E5 F300")
    message = refusal.value.message
    assert message == "Extrude below minimum temp\nSee the 'min_extrude_temp' config option for details"
