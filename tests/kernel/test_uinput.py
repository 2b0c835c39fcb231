"""Real event nodes (UInput) in a VM: devices, events, grab, gestures, LEDs, the examples, and a real OctoPrint.

One VM session (guest_uinput.py) runs every scenario; each test below judges one group of its facts.
"""

import errno

import pytest
from evdev import ecodes as e
from vm import axes, run_guest, sum_axis

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def facts(octoprint, tmp_path_factory):
    """The guest's facts; the printer daemon in it reaches the session's OctoPrint through one forwarded port."""
    octoprint.reset()
    mark = octoprint.mark()
    found = run_guest(
        "guest_uinput.py",
        tmp_path_factory.mktemp("kernel") / "guest_uinput.log",
        {
            "VM_HOSTFWD": str(octoprint.port),
            "KERNEL_PRINTER_URL": f"http://10.0.2.100:{octoprint.port}",
            "KERNEL_PRINTER_KEY": octoprint.api_key,
        },
    )
    found["_serial_sent"] = octoprint.settle(mark)
    return found


def test_nodes_belong_to_group_input(facts):
    assert (facts["keypad_node"]["group"], facts["keypad_node"]["mode"]) == ("input", "0o660"), facts["_log"]


def test_devices_lists_name_ids_phys_and_capabilities(facts):
    run = facts["devices_in_group_input"]
    path = facts["keypad_node"]["path"]
    assert run["rc"] == 0, run
    assert f"{path}  'Virtual UInput Keypad'  id 1234:5678  phys uinput-keypad/input0" in run["stdout"]
    assert "27 keys, no wheels, LEDs: NUML CAPSL SCROLLL" in run["stdout"]
    assert "'Contour Design ShuttleXpress'  id 0b33:0020" in run["stdout"]
    assert "5 keys, REL_DIAL REL_WHEEL, LEDs: none" in run["stdout"]


def test_devices_without_group_input_says_what_to_do(facts):
    run = facts["devices_without_group_input"]
    assert run["rc"] == 1, run
    assert f"{facts['keypad_node']['path']}: permission denied" in run["stdout"]
    assert "SupplementaryGroups=input" in run["stdout"]


def test_events_prints_keymap_lines_from_the_node(facts):
    events = facts["events"]
    assert events["ready"] and events["rc"] == 0, events
    assert "KEY_KP8: msg KEY_KP8   # Virtual Events Knob" in events["lines"]
    assert "KEY_UP: msg KEY_UP   # Virtual Events Knob" in events["lines"]
    assert "# rotary: {REL_DIAL: jog z={step}}   # Virtual Events Knob value 1" in events["lines"]


def test_grab_waits_for_keys_up_then_shuts_out_other_readers(facts):
    assert facts["keypad_using"], "the daemon never used the keypad"
    # While a key is held at start the daemon must not grab: another reader still gets KP4.
    assert facts["other_reader_while_key_held"] == [[e.KEY_KP4, 1], [e.KEY_KP4, 0]]
    # Once it is released the daemon grabs: another reader gets nothing and cannot grab.
    assert facts["other_reader_after_release"] == []
    assert facts["other_grab"] == errno.EBUSY
    assert facts["press_KP8"] == [{"command": "jog", "y": 1}]


@pytest.mark.parametrize(
    "key, expected",
    [
        ("KEY_UP", {"y": 1}),
        ("KEY_DOWN", {"y": -1}),
        ("KEY_LEFT", {"x": -1}),
        ("KEY_RIGHT", {"x": 1}),
        ("KEY_PAGEUP", {"z": 1}),
    ],
)
def test_numlock_off_codes_jog_like_the_keypad_codes(facts, key, expected):
    assert facts[f"press_{key}"] == [{"command": "jog", **expected}]


def test_held_jog_key_repeats_until_released(facts):
    repeat = facts["repeat_KP6"]
    assert axes(repeat["jogs"]) == {"x"} and all(body["x"] == 1 for body in repeat["jogs"]), repeat
    # press at 0, repeats from repeat_delay_s 0.4 every repeat_s 0.15: 9 in 1.5 s; emulation may stretch the
    # hold (the writer sleeps late) but a repeat that outlives the release would run on far past this.
    assert 4 <= len(repeat["jogs"]) <= 16, repeat


def test_hold_and_double_press(facts):
    assert facts["hold_KP1"] == [["POST", "/api/printer/tool", {"command": "extrude", "amount": -5}]]
    assert facts["press_KP1"] == [["POST", "/api/printer/tool", {"command": "extrude", "amount": 5}]]
    assert facts["double_KP0"] == [["POST", "/api/printer/command", {"commands": ["M107"]}]]
    assert facts["press_KP0"] == [["POST", "/api/printer/command", {"commands": ["M106 S255"]}]]


def test_leds_show_the_step_as_the_keymap_says(facts):
    # etc/keymap.yaml (leds: mode): "LEDs lit: none / NumLock / NumLock + Caps Lock" for steps 0.1 / 1 / 10.
    assert facts["leds_by_step"] == {"0.1": [], "1": ["LED_NUML"], "10": ["LED_CAPSL", "LED_NUML"]}


def test_shuttlexpress_dial_jogs_the_selected_axis(facts):
    assert facts["shuttle_using"]
    assert axes(facts["dial_x_plus_2"]) == {"x"} and sum_axis(facts["dial_x_plus_2"], "x") == 2
    assert axes(facts["dial_y_minus_3"]) == {"y"} and sum_axis(facts["dial_y_minus_3"], "y") == -3


def test_macropad_key_pair_knob_jogs_z_by_the_step(facts):
    assert facts["macro_using"]
    assert axes(facts["knob_up3_down1"]) == {"z"} and sum_axis(facts["knob_up3_down1"], "z") == 0.2
    assert facts["knob_up_after_step"] == [{"command": "jog", "z": 1}]


def test_key_presses_reach_the_printer_as_gcode(facts):
    assert facts["printer_using"] and facts["printer_answers"], facts["_log"]
    assert all(facts["printer_done"]), facts["printer_done"]
    sent = facts["_serial_sent"]
    moves = [line.split(" F")[0] for line in sent if line.startswith(("G0 ", "G1 ", "G28"))]
    # (the mode change's M300/M117 feedback may be dropped by design when an action follows at once)
    assert moves == ["G0 Y1", "G0 X-10", "G28 X0 Y0 Z0"], sent


def test_daemons_exit_0_on_sigterm(facts):
    assert facts["exit_codes"] == {"keypad": 0, "shuttle": 0, "macro": 0, "printer": 0}
