"""A keypad on a real USB bus in a VM: by-id links, the udev rule, HID LED reports, unplug and replug.

One VM session (guest_usb.py) runs every scenario; each test below judges one group of its facts.
"""

import os

import pytest
from vm import axes, run_guest

pytestmark = pytest.mark.kernel
CYCLES = 20
LINK = "usb-Virtual_USB_Keypad_{}-event-kbd"
NUML, CAPSL = 1, 2  # bits of the boot keyboard's LED output report


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    return run_guest(
        "guest_usb.py",
        tmp_path_factory.mktemp("kernel") / "guest_usb.log",
        {"KERNEL_CYCLES": os.environ.get("KERNEL_CYCLES", str(CYCLES))},
    )


def test_devices_lists_the_usb_keypad_with_its_by_id_path(facts):
    run, node = facts["devices"], facts["keypad_node"]
    assert run["rc"] == 0, run
    assert f"{node['path']}  'Virtual USB Keypad'  id 04d9:1203  phys usb-dummy_hcd.0-1/input0" in run["stdout"]
    assert f"    by-id /dev/input/by-id/{LINK.format('0001')}" in run["stdout"]
    assert "LEDs: NUML CAPSL SCROLLL" in run["stdout"]


def test_udev_rule_gives_the_panels_to_group_octopanel(facts):
    # As shipped, the rule covers the ShuttleXpress IDs; the keypad line once its leading # is removed.
    assert facts["rule_has_keypad_line"], "udev/70-octopanel.rules lost its commented keypad line"
    assert (facts["shuttle_ids_node"]["group"], facts["shuttle_ids_node"]["mode"]) == ("octopanel", "0o660")
    assert (facts["keypad_node"]["group"], facts["keypad_node"]["mode"]) == ("octopanel", "0o660")


def test_daemon_started_before_the_keypad_uses_it_once_plugged(facts):
    assert facts["waiting_before_plug"], "the daemon did not report waiting for the keypad"
    assert facts["first_plug_s"] is not None and facts["first_plug_s"] < 20


def test_leds_arrive_as_hid_output_reports(facts):
    assert facts["led_report_step_1"] == NUML
    assert facts["led_report_step_10"] == NUML | CAPSL
    assert facts["jog_step_10"] == [{"command": "jog", "y": 10}]


def test_unplug_while_a_repeating_jog_key_is_held_stops_motion(facts):
    unplug = facts["unplug_held_key"]
    assert unplug["lost_seen"], unplug
    assert len(unplug["jogs_before"]) >= 3 and axes(unplug["jogs_before"]) == {"x"}, unplug
    assert unplug["jogs_after_lost"] == [], unplug
    assert facts["replug_s"] is not None


def test_replug_at_another_and_the_same_by_id_path_keeps_modes(facts):
    cycles = facts["cycles"]
    assert len(cycles) == int(os.environ.get("KERNEL_CYCLES", CYCLES))
    for number, cycle in enumerate(cycles, 1):
        where = f"cycle {number}: {cycle}"
        assert cycle["by_id"] == [LINK.format(cycle["serial"])], where
        assert cycle["using_s"] is not None and cycle["lost"], where
        # step 10 was chosen before the first unplug: the jog and the LEDs keep it across every replug
        assert cycle["jogs"] == [{"command": "jog", "y": 10}], where
        assert cycle["led"] == NUML | CAPSL, where
    assert {cycle["serial"] for cycle in cycles} == {"0001", "0002"}


def test_keymap_naming_a_by_id_path_takes_only_that_keypad(facts):
    by_id = facts["by_id_daemon"]
    assert by_id["path_in_keymap"]
    assert by_id["took_other_serial"] is None, by_id
    assert [run["jogs"] for run in by_id["runs"]] == [[{"command": "jog", "y": 1}]] * 2, by_id


def test_daemons_exit_0_on_sigterm(facts):
    assert facts["keypad_daemon_rc"] == 0 and facts["by_id_daemon"]["rc"] == 0
