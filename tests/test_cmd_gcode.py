"""End to end: raw G-code and the one-line commands (messages, beeps, fans, servos, steppers, factors)."""

import json
import re

import pytest
from cmdcheck import failed, ok, requests_made, sent_by, start_print


def sends(run8, printer, command, *args):
    """Run one command; return (stdout, the G-code lines the printer received)."""
    mark = printer.mark()
    proc = ok(run8(command, *args))
    return proc.stdout, sent_by(printer, mark)


@pytest.mark.parametrize(
    "command, args, expected",
    [
        ("8g", ["m117 x"], ["M117 X"]),
        ("8g", ["m117", "two", "words"], ["M117 TWO WORDS"]),
        ("8gcode", ["m117 via gcode"], ["M117 VIA GCODE"]),
        ("8g0", ["x10 y20"], ["G0 X10 Y20"]),
        ("8g1", ["x5", "f3000"], ["G1 X5 F3000"]),
        ("8msg", ["Hello World"], ["M117 Hello World"]),
        ("8msg", ["keeps", "CaSe", "x=1"], ["M117 keeps CaSe x=1"]),
        ("8beep", [], ["M300 P500 S2000"]),
        ("8beep", ["100", "440"], ["M300 P100 S440"]),
        ("8beep", ["250"], ["M300 P250 S2000"]),
        ("8click", [], ["M108"]),
        ("8getpos", [], ["M114"]),
        ("8stepon", [], ["M17"]),
        ("8stepoff", [], ["M18"]),
        ("8sleep", ["0.2"], ["G4 S0.2"]),
        ("8sleep", ["1"], ["G4 S1"]),
        ("8sleepms", ["10"], ["G4 P10"]),
        ("8fan", ["on"], ["M106 S255"]),
        ("8fan", ["off"], ["M107"]),
        ("8fan", ["128"], ["M106 S128"]),
        ("8fan", ["0"], ["M107"]),
        ("8fan2", ["on"], ["M42 P57 S255"]),
        ("8fan2", ["off"], ["M42 P57 S0"]),
        ("8servo", ["1", "90"], ["M280 P1 S90"]),
        ("8speed", ["150"], ["M220 S150"]),
        ("8feed", ["95"], ["M221 S95"]),
        ("8settempr", ["35"], ["M104 R S35"]),
        ("8setbedr", ["30.5"], ["M140 R S30.5"]),
    ],
)
def test_one_line_commands(run8, printer, command, args, expected):
    _out, sent = sends(run8, printer, command, *args)
    assert sent == expected


def test_g_output_names_what_was_sent(run8, printer):
    out, sent = sends(run8, printer, "8g", "m117 shown")
    assert out == "M117 SHOWN sent\n" and sent == ["M117 SHOWN"]


def test_gmulti_sends_every_line_in_one_request(run8, printer):
    mark = printer.mark()
    proc = ok(run8("8gmulti", "m117 first", "g4 p1", "m117 third", "-v"))
    posts = [m for m in requests_made(proc.stderr) if m.startswith("POST")]
    assert posts == [f'POST {printer.url}/api/printer/command {{"commands": ["M117 FIRST", "G4 P1", "M117 THIRD"]}}']
    assert sent_by(printer, mark) == ["M117 FIRST", "G4 P1", "M117 THIRD"]


def test_octopanel_key_value_form(runop, printer):
    mark = printer.mark()
    ok(runop("fan", "speed=64"))
    ok(runop("beep", "ms=50", "hz=1000"))
    ok(runop("servo", "num=2", "angle=45"))
    assert sent_by(printer, mark) == ["M106 S64", "M300 P50 S1000", "M280 P2 S45"]


# -- refusals: nothing is sent, no request is made --------------------------------------------------------


@pytest.mark.parametrize(
    "command, args, text",
    [
        ("8g", ["M117 a\nM104 S300"], "G-code must be one line without control characters"),
        ("8g", ["M117 a\rM104 S300"], "one line without control characters"),
        ("8gcode", ["M117 bell\x07"], "one line without control characters"),
        ("8gmulti", ["M117 ok", "M117 a\nM140 S150"], "one line without control characters"),
        ("8msg", ["two\nlines"], "one line without control characters"),
        ("8g0", ["X1\tY2"], "one line without control characters"),
        ("8fan", ["256"], "fan: speed: 256 is above the maximum 255"),
        ("8fan", ["maybe"], "fan: speed: expected on, off or 0..255, got 'maybe'"),
        ("8fan", ["-1"], "below the minimum 0"),
        ("8fan2", ["half"], "expected true or false"),
        ("8speed", ["5"], "speed: percent: 5 is below the minimum 10"),
        ("8speed", ["600"], "speed: percent: 600 is above the maximum 500"),
        ("8feed", ["9"], "below the minimum 10"),
        ("8feed", ["1e9"], "above the maximum 500"),
        ("8servo", ["1", "200"], "angle: 200 is above the maximum 180"),
        ("8beep", ["100", "5"], "hz: 5 is below the minimum 20"),
        ("8sleep", ["-1"], "below the minimum 0"),
        ("8settempr", ["300"], "temp: 300 is above the maximum 285"),
        ("8setbedr", ["130"], "temp: 130 is above the maximum 120"),
        ("8g", [], "missing code"),
    ],
)
def test_usage_refusals_send_nothing(run8, printer, command, args, text):
    mark = printer.mark()
    proc = failed(run8(command, "-v", *args), 2, text)
    assert requests_made(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_raw_moves_and_stepper_off_are_refused_while_printing(run8, printer):
    start_print(printer)
    mark = printer.mark()
    for command, args in (("8g0", ["X5"]), ("8g1", ["Z10"]), ("8stepoff", [])):
        proc = failed(run8(command, "-v", *args), 1, "refused: the printer is printing", "nothing sent")
        assert not [m for m in requests_made(proc.stderr) if not m.startswith("GET")]
    sent = sent_by(printer, mark)
    assert all(re.fullmatch(r"G1 X(180|20) F3000", line) for line in sent), sent  # only the print's own moves


def test_raw_gcode_is_allowed_while_printing(run8, printer):
    """Like OctoPrint: raw G-code (here a message) goes out during a print."""
    start_print(printer)
    mark = printer.mark()
    ok(run8("8msg", "during print"))
    ok(run8("8g", "m117 raw during print"))
    ok(run8("8gmulti", "m106 s100", "m117 multi"))
    sent = sent_by(printer, mark)
    assert {"M117 during print", "M117 RAW DURING PRINT", "M106 S100", "M117 MULTI"} <= set(sent), sent


def test_json_result_of_a_refusal_is_not_printed_on_stdout(run8, printer):
    proc = failed(run8("8fan", "300", "--json"), 2, "above the maximum 255")
    assert proc.stdout == ""
    data = json.loads(ok(run8("8beep", "--json")).stdout)
    assert data["sent"] is True and data["action"] == "beep"


@pytest.mark.parametrize(
    "command, args",
    [
        ("8g", ["G0 X5"]),
        ("8g", ["g28"]),  # upper-cased before the check
        ("8gcode", ["G1 E5 F300"]),
        ("8gmulti", ["M117 harmless", "G28 X"]),
        ("8g", ["G1X5"]),  # firmware reads this as G1 X5
        ("8g", ["G01 X5"]),  # and this
        ("8g", ["G00 Y5"]),
        ("8g", ["N10 G1 X5"]),  # a line number in front
    ],
)
def test_raw_motion_gcode_is_refused_while_printing(run8, printer, command, args):
    start_print(printer)
    mark = printer.mark()
    proc = failed(run8(command, "-v", *args), 1, "refused while it is printing (--force overrides); nothing sent")
    assert not [m for m in requests_made(proc.stderr) if not m.startswith("GET")]
    sent = sent_by(printer, mark)
    assert all(re.fullmatch(r"G1 X(180|20) F3000", line) for line in sent), sent


def test_raw_motion_gcode_with_force_while_printing(run8, printer):
    start_print(printer)
    mark = printer.mark()
    ok(run8("8g", "G0 Z0.2", "--force"))
    ok(run8("8gmulti", "G91", "G1 Z0.1", "G90", "--force"))
    sent = [line for line in sent_by(printer, mark) if not re.fullmatch(r"G1 X(180|20) F3000", line)]
    assert sent == ["G0 Z0.2", "G91", "G1 Z0.1", "G90"]


def test_raw_motion_gcode_when_idle_needs_no_force(run8, printer):
    mark = printer.mark()
    ok(run8("8g", "g0 x5"))
    ok(run8("8gmulti", "g28 x", "m117 done"))
    assert sent_by(printer, mark) == ["G0 X5", "G28 X", "M117 DONE"]
