"""The G-code word parser reads lines as Marlin's gcode/parser.cpp does, and refuses what it would misread."""

import pytest

from octopanel.gcode.parse import GcodeError, parse
from octopanel.gcode.policy import dangerous


@pytest.mark.parametrize(
    "line, code, words",
    [
        ("G28", "G28", {}),
        ("G 28", "G28", {}),  # Marlin skips spaces between the letter and the code number
        ("G 1 Z10", "G1", {"Z": 10}),
        ("M 104 S300", "M104", {"S": 300}),
        ("N-1 G28", "G28", {}),  # a signed line number is skipped
        ("n10 g28", "G28", {}),
        ("  N+5   G28 X", "G28", {"X": None}),  # a bare letter has no value
        ("G1 X0E50", "G1", {"X": 0, "E": 50}),  # the next letter starts the next word: no exponent
        ("G1 F100E50", "G1", {"F": 100, "E": 50}),
        ("G1 E+50", "G1", {"E": 50}),
        ("M104 S+300", "M104", {"S": 300}),
        ("G1 X.5 Y-.25 Z5.", "G1", {"X": 0.5, "Y": -0.25, "Z": 5}),
        ("g01x5y6", "G1", {"X": 5, "Y": 6}),  # lower case, leading zeros, run together
        ("G1 X 5  E 2", "G1", {"X": 5, "E": 2}),  # spaces between a letter and its number
        ("G1 X E5", "G1", {"X": None, "E": 5}),
        ("G1 X5 ; E50", "G1", {"X": 5}),  # ; ends the line
        ("G1 X5 (E50) Y2", "G1", {"X": 5, "Y": 2}),  # ( ) is a comment
        ("G1 X5 (E50", "G1", {"X": 5}),  # an unclosed ( runs to the end of the line
        ("G1 X5*71", "G1", {"X": 5}),  # * ends the command: a checksum follows
        ("N3 G1 X5 *12 ; done", "G1", {"X": 5}),
        ("G29.1 P1", "G29.1", {"P": 1}),  # a subcode is kept
        ("M303 E-1 S60", "M303", {"E": -1, "S": 60}),
        ("T0", "T0", {}),
        ("G1 X1e-05", "G1", {"X": 1, "E": -5}),  # what Marlin makes of an exponent
    ],
)
def test_lines_parse_as_marlin_reads_them(line, code, words):
    command = parse(line)
    assert (command.code, command.words, command.text) == (code, words, line)


@pytest.mark.parametrize(
    "line, sent",
    [
        ("g 1 x.5 e+2 ; c", "G1 X0.5 E2"),
        ("N-1 G28", "G28"),
        ("G28 X", "G28 X"),
        ("G1 X0.00001", "G1 X0"),  # written by bounds.gnum: fixed notation, 3 decimals
        ("m117 Hello (you) World ; hi", "M117 Hello  World"),
        ("M117", "M117"),
    ],
)
def test_line_is_what_was_judged_without_comments_numbers_or_checksums(line, sent):
    assert parse(line).line() == sent


@pytest.mark.parametrize(
    "line, arg",
    [
        ("M117 G28 X0 E50", "G28 X0 E50"),  # the rest of the line is text, not words
        ("m118 E1 hello hello", "E1 hello hello"),  # letters repeat freely in text
        ("M23 /path/a.gcode", "/path/a.gcode"),
        ("M117", ""),
    ],
)
def test_string_argument_commands_take_the_rest_of_the_line_as_text(line, arg):
    command = parse(line)
    assert command.arg == arg and command.words == {}


@pytest.mark.parametrize("line", ["", "   ", "; just a comment", "(only this)", "N5", "N5 *12"])
def test_empty_and_comment_only_lines_are_none(line):
    assert parse(line) is None


@pytest.mark.parametrize(
    "line, message",
    [
        ("G1 X1 X2", "parameter X appears twice"),
        ("G1 x1 X2", "parameter X appears twice"),
        ("G1 X1-2", "X1-2 is not a number"),
        ("G1 X1.2.3", "X1.2.3 is not a number"),
        ("G1 X-", "X- is not a number"),
        ("G1 X5!", "unexpected '!'"),
        ('G1 X5 "E50"', "expected a parameter letter"),
        ("G1\tX5", "expected a parameter letter"),
        ("N10G28", "a line number must be followed by a space"),
        ("X5 E50", "starts with G, M or T"),  # GCODE_MOTION_MODES would run it as a move
        ("@pause", "starts with G, M or T"),
        ("T?", "starts with G, M or T"),
        ("G", "starts with G, M or T"),
        ("G-1", "starts with G, M or T"),
        ("G65564", "out of range"),  # a uint16_t code would wrap to G28
        ("G1 X5 *abc", "checksum"),
        ("M117hello", "needs a space"),
    ],
)
def test_what_marlin_would_misread_is_refused(line, message):
    with pytest.raises(GcodeError, match=message):
        parse(line)


def test_gcode_error_is_a_value_error_naming_the_line():
    with pytest.raises(ValueError, match=r"^'G1 X1 X2': "):
        parse("G1 X1 X2")


@pytest.mark.parametrize(
    "lines, reason",
    [
        ("M81", "M81 turns the printer's power supply off"),
        (["M117 bye", "m 112"], "M112 is an emergency stop"),
        ("N1 M0", "M0 stops and waits"),
        (["M1 ; wait"], "M1 stops and waits"),
        ("M117 M81", None),  # text, not a command
        (["G28", "M104 S200"], None),
    ],
)
def test_dangerous_is_judged_by_effect(lines, reason):
    found = dangerous(lines)
    assert (found is None) if reason is None else found.startswith(reason), found
