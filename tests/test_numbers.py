"""Numbers the firmware cannot misread: fixed notation, at most 3 decimals, no exponent, nan or inf.

`G0 Z1e-05` reads as Z1 followed by an E word, so every number octopanel writes into G-code or a JSON
body is rounded to 0.001 first, and a nonzero value that rounds to 0 is refused before anything is sent."""

import json
import math
import re

import pytest
from cmdcheck import failed, ok, posts, sent_by
from hypothesis import given, settings
from hypothesis import strategies as st

from octopanel import values
from octopanel.printers.octoprint.client import plain

FIXED = re.compile(r"-?\d+(\.\d{1,3})?")  # what firmware reads as one number
ROUNDS_TO_ZERO = "rounds to 0 (numbers are sent to the nearest 0.001): give 0 or a size of at least 0.001"
NO_EXPONENT = re.compile(r"[0-9.][eE][-+]?\d|nan|inf", re.IGNORECASE)


def numbers_in(line):
    """The number after each G-code letter of `line`."""
    return re.findall(r"[A-Z]([^A-Z ]+)", line.split(" ", 1)[1] if " " in line else "")


@pytest.mark.parametrize(
    "command, args, what",
    [
        ("8jog", ["0.00001"], "jog: z: '0.00001'"),
        ("8jog", ["1e-7", "0", "0"], "jog: x: '1e-7'"),
        ("8ex", ["1e-7"], "ex: amount: '1e-7'"),
        ("8ex", ["--force", "-0.0004"], "ex: amount: '-0.0004'"),
        ("8fex", ["--force", "0.00001"], "fex: amount: '0.00001'"),
        ("8settemp", ["0.0001"], "settemp: temp: '0.0001'"),
        ("8setbedr", ["1e-9"], "setbedr: temp: '1e-9'"),
        ("8eject", ["-t", "1e-5", "--force"], "eject: temp: '1e-5'"),
        ("8sleep", ["1e-5"], "sleep: s: '1e-5'"),
    ],
)
def test_a_value_that_rounds_to_zero_is_refused_before_anything_is_sent(run8, printer, command, args, what):
    mark = printer.mark()
    proc = failed(run8(command, "-v", *args), 2, f"{what} {ROUNDS_TO_ZERO}")
    assert posts(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_jog_and_extrude_are_sent_rounded_to_a_thousandth_in_fixed_notation(run8, printer):
    """Through POST /api/printer/printhead and /api/printer/tool: OctoPrint writes the JSON numbers with str()."""
    mark = printer.mark()
    assert ok(run8("8jog", "0.0015")).stdout == "jogged z=0.002\n"
    ok(run8("8jog", "0", "-1.23456", "1e2"))  # x=0 is still a valid zero
    ok(run8("8jog", "299.9999"))
    ok(run8("8ex", "--force", "1.23456"))
    sent = sent_by(printer, mark)
    moves = [line for line in sent if line.startswith(("G0", "G1"))]
    assert [re.sub(r" F\d+$", "", line) for line in moves] == [
        "G0 Z0.002",
        "G0 X0 Y-1.235 Z100",
        "G0 Z300",
        "G1 E1.235",
    ], sent


def test_raw_gcode_numbers_are_fixed_notation(run8, printer):
    """The numbers octopanel writes into G-code itself (fex, settempr, setbedr, sleep)."""
    mark = printer.mark()
    ok(run8("8fex", "--force", "0.0015", "100"))
    ok(run8("8settempr", "1e2"))
    ok(run8("8setbedr", "59.99999"))
    ok(run8("8settemp", "2e1"))
    ok(run8("8setbed", "0"))
    ok(run8("8sleep", "0.0015"))
    sent = sent_by(printer, mark)
    assert sent == ["G91", "G1 E0.002 F100", "G90", "M104 R S100", "M140 R S60", "M104 S20", "M140 S0", "G4 S0.002"], (
        sent
    )
    for line in sent:
        assert not NO_EXPONENT.search(line), line
        assert all(FIXED.fullmatch(n) for n in numbers_in(line)), line


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e4, 1e4) | st.floats(-0.01, 0.01))
def test_every_number_accepted_is_written_in_fixed_notation(value):
    """to_fixed either refuses a value or returns one that json.dumps and gnum write as FIXED (at 1e16 and
    beyond, where repr() turns to exponents, a float is whole and plain() makes it an int)."""
    try:
        rounded = values.to_fixed(repr(value))
    except ValueError as exc:
        assert not math.isfinite(value) or "rounds to 0" in str(exc), (value, exc)
        return
    assert FIXED.fullmatch(json.dumps(plain(rounded))), (value, rounded)
    assert FIXED.fullmatch(values.gnum(rounded)), (value, rounded)
    assert abs(rounded - value) <= 0.0005 + 1e-9


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.1 + 0.2, "0.3"),
        (2.0, "2"),
        (-0.0, "0"),
        (1e-05, "0"),
        (-1e-05, "0"),
        (12.3456, "12.346"),
        (7, "7"),
    ],
)
def test_plain_writes_a_merged_sum_in_fixed_notation(value, expected):
    """The executor merges jogs and extrusions by adding them: the sum goes through plain() too."""
    assert json.dumps(plain(value)) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "1", None, True])
def test_plain_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(ValueError):
        plain(value)
