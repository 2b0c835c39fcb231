"""Reading Moonraker's replies (printers/moonraker/replies.py), on replies recorded from Moonraker 0.11.0 with
Kalico's klippy (tracebacks shortened to their first and last frames, which is what is read)."""

import pytest

from octopanel.printers.moonraker import replies, scripts

TB_HEAD = 'Traceback (most recent call last):\n\n  File ".../moonraker/components/application.py", line 714\n'
MUST_HOME = {
    "error": {
        "code": 400,
        "message": "Must home axis first: 5.000 0.000 0.000 [0.000]",
        "traceback": TB_HEAD + "tornado.web.HTTPError: HTTP 400: Must home axis first: 5.000 0.000 0.000 [0.000]\n",
    }
}
COLD = {
    "error": {
        "code": 400,
        "message": "Unknown",
        "traceback": TB_HEAD + "moonraker.utils.exceptions.ServerError: Extrude below minimum temp\nSee the "
        "'min_extrude_temp' config option for details\n\n\nThe above exception was the direct cause of the "
        "following exception:\n\n\n" + TB_HEAD + "tornado.web.HTTPError: HTTP 400: Extrude below minimum temp\n"
        "See the 'min_extrude_temp' config option for details\n",
    }
}
NOT_CONNECTED = {
    "error": {
        "code": 503,
        "message": "Klippy Host not connected",
        "traceback": TB_HEAD + "tornado.web.HTTPError: HTTP 503: Klippy Host not connected\n",
    }
}
SHUTDOWN_HOOKS = {
    "state": "shutdown",
    "state_message": 'Shutdown due to webhooks request\nOnce the underlying issue is corrected, use the\n"FIRMWARE_'
    'RESTART" command to reset the firmware, reload the\nconfig, and restart the host software.\nPrinter is shutdown\n',
}
READY = {"state": "ready", "state_message": "Printer is ready"}


def stats(job, message=""):
    return {"filename": "", "total_duration": 0.0, "print_duration": 0.0, "state": job, "message": message}


@pytest.mark.parametrize(
    "job, expected",
    [
        ("standby", "idle"),
        ("complete", "idle"),
        ("cancelled", "idle"),
        ("printing", "printing"),
        ("paused", "paused"),
        ("error", "error"),
    ],
)
def test_print_stats_states_map_to_octopanel_states(job, expected):
    state = replies.from_status({"webhooks": READY, "print_stats": stats(job), "pause_resume": {"is_paused": False}})
    assert state.name == expected
    assert f"print_stats:{job}" in state.flags


def test_pause_with_no_job_is_still_idle():
    """Klipper's PAUSE with no job sets is_paused while print_stats stays standby: octopanel calls that idle,
    so that 'pause only when printing' holds and a jog is allowed (as after the real stateless pause)."""
    state = replies.from_status(
        {"webhooks": READY, "print_stats": stats("standby"), "pause_resume": {"is_paused": True}}
    )
    assert state.name == "idle"


def test_a_shut_down_klipper_is_an_error_whatever_the_job_says():
    state = replies.from_status({"webhooks": SHUTDOWN_HOOKS, "print_stats": stats("printing")})
    assert state.name == "error"
    assert state.text.startswith("Error: Klipper shutdown (Shutdown due to webhooks request Once")
    assert "\n" not in state.text


def test_a_starting_klipper_is_disconnected_and_an_unknown_job_state_an_error():
    assert replies.from_status({"webhooks": {"state": "startup", "state_message": "x"}}).name == "disconnected"
    assert replies.from_status({"webhooks": READY, "print_stats": stats("weird")}).name == "error"
    failed = replies.from_status({"webhooks": READY, "print_stats": stats("error", "Move out of range")})
    assert failed.text == "Error: Move out of range"


def test_klippers_own_words_are_read_from_a_400():
    assert replies.error_text(MUST_HOME) == "Must home axis first: 5.000 0.000 0.000 [0.000]"


def test_a_message_with_a_newline_is_read_from_the_traceback_not_shown_as_unknown():
    """Before: 'Unknown' is all Moonraker's message field holds when Klipper's text has a newline."""
    assert replies.error_text(COLD) == (
        "Extrude below minimum temp (See the 'min_extrude_temp' config option for details)"
    )


def test_other_error_shapes_fall_back_to_the_body_text():
    assert replies.error_text(NOT_CONNECTED) == "Klippy Host not connected"
    assert replies.error_text(None, "  <html> bad\n gateway ") == "<html> bad gateway"
    assert replies.error_text({"error": {"message": "Unknown"}}) == "Unknown"
    assert replies.unwrap({"result": {"a": 1}}) == {"a": 1} and replies.unwrap([1]) == [1]


def test_a_jog_is_one_script_that_restores_the_gcode_state():
    """Separate G91 requests turned a running job's next line into a relative move: one script, saved state."""
    text = scripts.jog({"x": 10.0, "z": 0.30000000000000004}, 6000.0, macro=False)
    assert text.splitlines() == [
        "SAVE_GCODE_STATE NAME=octopanel_move",
        "G91",
        "G1 X10 Z0.3 F6000",
        "RESTORE_GCODE_STATE NAME=octopanel_move",
    ]
    assert scripts.jog({"y": -1.5}, 200, macro=True).splitlines()[1] == "OCTOPANEL_JOG Y=-1.5 F=200"
    assert scripts.extrude(5, 300, macro=False).splitlines()[1:3] == ["M83", "G1 E5 F300"]
    assert [scripts.changes_mode(line) for line in ("G91", "g90", "M83", "G1 X1", "M117 G91")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert scripts.home(("x", "y"), macro=False) == "G28 X Y"


def test_a_macro_refusal_is_shown_in_the_macros_own_words():
    wrapped = {
        "error": {
            "code": 400,
            "message": "Error evaluating 'gcode_macro OCTOPANEL_JOG:gcode': klippy.gcode.CommandError: octopanel: "
            "jog refused: printer is printing",
        }
    }
    assert replies.error_text(wrapped) == "octopanel: jog refused: printer is printing"


def test_jog_and_backlog_feed_rates_come_from_klippers_limits():
    """OctoPrint's default speeds, capped by printer.cfg's max_velocity / max_z_velocity /
    max_extrude_only_velocity (mm/s): the jog's F and the backlog model's rate are the same number."""
    from octopanel.printers.moonraker.client import MoonrakerClient

    client = MoonrakerClient("http://127.0.0.1:9", None)
    settings = {"printer": {"max_velocity": 50.0, "max_z_velocity": 2.0}, "extruder": {}}
    client._set_profile({"configfile": {"settings": settings}})
    speeds = {axis: entry["speed"] for axis, entry in client.profile()["axes"].items()}
    assert speeds == {"x": 3000.0, "y": 3000.0, "z": 120.0, "e": 300.0}
    client.close()


def test_a_command_klipper_does_not_know_is_read_from_its_console():
    """Klipper answers 200 to `M300` without a macro; only the console says so (recorded gcode_store)."""
    store = {
        "gcode_store": [
            {"message": "M300 P500 S2000", "time": 1.0, "type": "command"},
            {"message": '// Unknown command:"M300"', "time": 1.1, "type": "response"},
            {"message": "M117 x\nM998", "time": 2.0, "type": "command"},
            {"message": '// Unknown command:"M998"', "time": 2.1, "type": "response"},
            {"message": "G4 P1", "time": 3.0, "type": "command"},
            {"message": '// Unknown command:"G4"', "time": 3.1, "type": "response"},
        ]
    }
    assert replies.unknown_commands(store, "M117 x\nM998") == ["M998"]
    assert replies.unknown_commands(store, "M300 P500 S2000") == ["M300"]
    assert replies.unknown_commands(store, "M117 elsewhere") == []
    assert replies.unknown_commands(None, "M300") == []
