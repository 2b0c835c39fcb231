"""End to end, against the real OctoPrint: raw G-code spelled every way Marlin reads it is judged by its
effect, with a cold hotend and during a real print; serial.log shows that nothing refused went out."""

import pytest
from cmdcheck import PRINT_MOVE, failed, ok, requests_made, sent_by, start_print
from conftest import BIN, _run

BUSY = "refused while it is printing (--force overrides); nothing sent"
COLD = "below min_extrude_temp 170 °C"
TOOL_CAP, BED_CAP = "above max_tool_temp 285", "above max_bed_temp 120"

COLD_EXTRUSION = [
    ("8g", "G1 X0E50"),
    ("8g", "G1 F100E50"),
    ("8g", "G1 E+50"),
    ("8g", "g 1 e.5"),
    ("8gmulti", "M117 first", "N7 G1 X5 E5 *3"),
    ("8g1", "E100"),
    ("8g0", "E50"),
    ("8g", "G2 X1 I1 E2"),
    ("8g", "M701"),
    ("8g", "M600"),
]


def test_extrusion_in_any_spelling_is_refused_with_a_cold_hotend(run8, printer):
    mark = printer.mark()
    for args in COLD_EXTRUSION:
        proc = failed(run8(*args, "-v"), 1, COLD, "nothing sent")
        assert not [m for m in requests_made(proc.stderr) if not m.startswith("GET")], (args, proc.stderr)
    assert sent_by(printer, mark) == []


def test_force_lifts_the_cold_rule_at_a_shell_but_never_a_cap(run8, printer):
    mark = printer.mark()
    ok(run8("8g1", "--force", "E0.1"))
    failed(run8("8g", "--force", "M104 S300"), 2, TOOL_CAP)
    failed(run8("8g", "--force", "M302 S0"), 2, "M302 would allow extrusion below min_extrude_temp")
    assert sent_by(printer, mark) == ["G1 E0.1"]


# (args, exit code, words of the message): each refused during a real print, the hotend cold.
REFUSED = [
    (("8g", "G 28"), 1, BUSY),
    (("8g", "G 1 Z10"), 1, BUSY),
    (("8g", "N-1 G28"), 1, BUSY),
    (("8g", "G1 X0E50"), 1, BUSY),
    (("8g", "G1 F100E50"), 1, BUSY),
    (("8g", "G1 E+50"), 1, BUSY),
    (("8g1", "E100"), 1, "g1 refused: the printer is printing"),
    (("8g0", "E50"), 1, "g0 refused"),
    (("8g", "M104 S+300"), 2, TOOL_CAP),
    (("8g", "M 104 S300"), 2, TOOL_CAP),
    (("8g", "M303 E0 S400"), 2, TOOL_CAP),
    (("8g", "M109 B400"), 2, TOOL_CAP),
    (("8g", "M303 E-1 S150"), 2, BED_CAP),
    (("8g", "M141 S130"), 2, BED_CAP),
    (("8g", "M600"), 1, BUSY),
    (("8g", "M701"), 1, BUSY),
    (("8g", "M125"), 1, BUSY),
    (("8g", "G12"), 1, BUSY),
    (("8g", "G27"), 1, BUSY),
    (("8g", "G42"), 1, BUSY),
    (("8g", "G60"), 1, BUSY),
    (("8g", "G61"), 1, BUSY),
    (("8g", "G6"), 1, BUSY),
    (("8g", "G92 Z50"), 1, BUSY),
    (("8g", "G91"), 1, BUSY),
    (("8g", "G29.1"), 1, BUSY),
    (("8gmulti", "M117 a", "T1"), 1, BUSY),
    (("8g", "M302 S0"), 2, "M302 would allow extrusion"),
    (("8g", "M302 P1"), 2, "M302 would allow extrusion"),
    (("8g", "M211 S0"), 2, "M211 S0 turns the soft endstops off"),
    (("8g", "M220 S5000"), 2, "S5000 is outside 10..500%"),
    (("8g", "M106 S900"), 2, "S900 is outside 0..255"),
    (("8g", "M290 Z5"), 2, "Z5 is outside -0.2..0.2 mm"),
    (("8g", "--force", "M104 S300"), 2, TOOL_CAP),
    (("8g", "M118 //action:cancel"), 2, "action command"),
    (("8g", "G1 X1 X2"), 2, "parameter X appears twice"),
    (("8g", "N10G28"), 2, "line number"),
    (("8g", "M810 G28|G1 Z0"), 2, "macro"),
]
ALLOWED = [
    ("M117 hi", "M117 HI"),
    ("M106 S128", "M106 S128"),
    ("M220 S110", "M220 S110"),
    ("M104 S200", "M104 S200"),
    ("M 290 Z.05", "M290 Z0.05"),
]


@pytest.fixture(scope="module")
def printing(octoprint, tmp_path_factory):
    """One real print for the whole batch (a print per test would cost ~1 s each); yields a runner and
    the serial.log mark taken once the print's first moves went out."""
    octoprint.reset()
    start_print(octoprint)
    home = tmp_path_factory.mktemp("home")
    yield (lambda command, *args: _run(BIN / command, args, octoprint, home)), octoprint.mark()
    octoprint.reset()


@pytest.mark.parametrize("args, code, words", REFUSED, ids=[" ".join(a) for a, _c, _w in REFUSED])
def test_refused_during_a_real_print(printing, args, code, words):
    run, _mark = printing
    proc = failed(run(args[0], "-v", *args[1:]), code, words, "nothing sent")
    assert not [m for m in requests_made(proc.stderr) if not m.startswith("GET")], proc.stderr


def test_allowed_lines_reach_the_printer_during_the_print_and_nothing_refused_did(printing, octoprint):
    run, mark = printing
    for line, _sent in ALLOWED:
        ok(run("8g", line))
    sent = sent_by(octoprint, mark)
    assert [line for line in sent if not PRINT_MOVE.fullmatch(line)] == [s for _l, s in ALLOWED], sent
    assert "printing" in octoprint.flags()
