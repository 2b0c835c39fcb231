"""End to end: home, jog (forms and direction), extrusion and eject, and the motion safety refusals."""

import re

import pytest
from cmdcheck import PRINT_MOVE, failed, ok, posts, requests_made, sent_by, start_print


def assert_lines(sent, expected):
    """sent equals expected, where an expected item may be a regex (fullmatch)."""
    assert len(sent) == len(expected) and all(
        e.fullmatch(s) if isinstance(e, re.Pattern) else e == s for s, e in zip(sent, expected)
    ), (sent, expected)


def jogged(axes):
    return ["G91", re.compile(rf"G0 {axes}( F\d+)?"), "G90"]


EXTRUDE = ["G91", "M83", re.compile(r"G1 E5 F\d+"), "M82", "G90"]


def config_file(tmp_path, text):
    """The octopanel config in the HOME that run8 gives its commands."""
    path = tmp_path / "home" / ".config" / "octopanel" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- home and jog ------------------------------------------------------------------------------------------


def test_home(run8, printer):
    mark = printer.mark()
    assert ok(run8("8home")).stdout == "homed x y z\n"
    assert sent_by(printer, mark) == ["G91", "G28 X0 Y0 Z0", "G90"]


@pytest.mark.parametrize(
    "args, axes",
    [
        (["1", "2", "3"], "X1 Y2 Z3"),
        (["1", "0", "0"], "X1 Y0 Z0"),  # zero is sent, not dropped
        (["5"], "Z5"),  # one number: Z only (8control)
        (["-0.5"], r"Z-0\.5"),
        (["1.5", "-2.25", "0.1"], r"X1\.5 Y-2\.25 Z0\.1"),
    ],
)
def test_jog_legacy_forms(run8, printer, args, axes):
    mark = printer.mark()
    ok(run8("8jog", *args))
    assert_lines(sent_by(printer, mark), jogged(axes))


def test_jog_key_value_form(runop, printer):
    mark = printer.mark()
    assert ok(runop("jog", "z=5")).stdout == "jogged z=5\n"
    ok(runop("jog", "x=-3", "speed=1000"))
    assert_lines(sent_by(printer, mark), jogged("Z5") + ["G91", "G0 X-3 F1000", "G90"])


def test_jog_beyond_max_jog_is_refused(run8, printer):
    mark = printer.mark()
    proc = failed(run8("8jog", "-v", "0", "0", "301"), 2, "jog: z: 301 is above the maximum 300")
    assert requests_made(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_max_jog_comes_from_the_config(run8, printer, tmp_path):
    config_file(tmp_path, "max_jog: 10\n")
    failed(run8("8jog", "11"), 2, "jog: z: 11 is above the maximum 10")
    mark = printer.mark()
    ok(run8("8jog", "10"))
    assert_lines(sent_by(printer, mark), jogged("Z10"))


@pytest.fixture
def inverted_x(printer):
    """The default printer profile with the X axis inverted, restored afterwards; yields patch(inverted)."""

    def patch(inverted):
        response = printer.request(
            "PATCH", "/api/printerprofiles/_default", json={"profile": {"axes": {"x": {"inverted": inverted}}}}
        )
        assert response.status_code == 200, response.text
        assert response.json()["profile"]["axes"]["x"]["inverted"] is inverted

    patch(True)
    try:
        yield patch
    finally:
        patch(False)


def test_jog_follows_the_profile_inverted_axes(run8, printer, inverted_x):
    mark = printer.mark()
    assert ok(run8("8jog", "1", "2", "3")).stdout == "jogged x=1 y=2 z=3\n"  # what the user asked for
    assert_lines(sent_by(printer, mark), jogged("X-1 Y2 Z3"))


def test_jog_direction_raw_ignores_the_profile(run8, printer, inverted_x, tmp_path):
    config_file(tmp_path, "jog_direction: raw\n")
    mark = printer.mark()
    ok(run8("8jog", "1", "2", "3"))
    assert_lines(sent_by(printer, mark), jogged("X1 Y2 Z3"))


def test_jog_direction_8control_flips_every_axis(run8, printer, tmp_path):
    config_file(tmp_path, "jog_direction: 8control\n")
    mark = printer.mark()
    ok(run8("8jog", "1", "2", "3"))
    ok(run8("8jog", "-4"))
    assert_lines(sent_by(printer, mark), jogged("X-1 Y-2 Z-3") + jogged("Z4"))


# -- extrusion ----------------------------------------------------------------------------------------------


def test_extrude_cold_is_refused(run8, printer):
    mark = printer.mark()
    for command in ("8ex", "8extrude", "8fex"):
        proc = failed(
            run8(command, "-v", "5"),
            1,
            "the hotend is at 21.3 °C, below min_extrude_temp 170 °C",
            "--force",
            "nothing sent",
        )
        assert posts(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_extrude_with_force(run8, printer):
    mark = printer.mark()
    assert ok(run8("8ex", "5", "--force")).stdout == "extruded 5 mm\n"
    assert ok(run8("8extrude", "--force", "-2.5")).stdout == "retracted 2.5 mm\n"
    assert_lines(sent_by(printer, mark), EXTRUDE + ["G91", "M83", re.compile(r"G1 E-2\.5 F\d+"), "M82", "G90"])


def test_extrude_when_hot(run8, printer):
    printer.set_ambient(200)  # a hot nozzle at once (reset() undoes it)
    mark = printer.mark()
    ok(run8("8ex", "5"))
    ok(run8("8extrude", "1", "speed=120"))
    assert_lines(sent_by(printer, mark), EXTRUDE + ["G91", "M83", "G1 E1 F120", "M82", "G90"])


def test_min_extrude_temp_comes_from_the_config(run8, printer, tmp_path):
    config_file(tmp_path, "min_extrude_temp: 25\n")
    failed(run8("8ex", "5"), 1, "below min_extrude_temp 25 °C")
    config_file(tmp_path, "min_extrude_temp: 20\n")  # the nozzle is at 21.3 °C
    mark = printer.mark()
    ok(run8("8ex", "5"))
    assert_lines(sent_by(printer, mark), EXTRUDE)


def test_extrude_zero_is_a_usage_error(run8, printer):
    mark = printer.mark()
    proc = failed(run8("8ex", "-v", "0", "--force"), 2, "amount must not be 0")
    assert requests_made(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_fex(run8, printer):
    mark = printer.mark()
    assert ok(run8("8fex", "5", "--force")).stdout == "G91 | G1 E5 F2000 | G90 sent\n"
    ok(run8("8fex", "-2", "900", "--force"))
    assert sent_by(printer, mark) == ["G91", "G1 E5 F2000", "G90", "G91", "G1 E-2 F900", "G90"]


def test_eject_with_force(run8, printer):
    mark = printer.mark()
    assert ok(run8("8eject", "--force")).stdout == "filament ejected\n"
    assert sent_by(printer, mark) == ["G91", "G1 E3 F700", "G1 E-800 F2500", "G90"]


def test_eject_cold_is_refused(run8, printer):
    mark = printer.mark()
    failed(run8("8eject"), 1, "below min_extrude_temp")
    assert sent_by(printer, mark) == []


def test_eject_heats_first_then_turns_the_hotend_off(run8, printer, tmp_path):
    config_file(tmp_path, "min_extrude_temp: 30\n")
    mark = printer.mark()
    assert ok(run8("8eject", "-t", "40")).stdout == "filament ejected, hotend off\n"
    assert_lines(
        sent_by(printer, mark),
        [re.compile(r"M104 (T0 )?S40"), "G91", "G1 E3 F700", "G1 E-800 F2500", "G90", re.compile(r"M104 (T0 )?S0")],
    )
    tool = printer.request("GET", "/api/printer/tool").json()["tool0"]
    assert tool["target"] == 0 and tool["actual"] >= 40


def test_eject_with_a_temperature_below_min_extrude_temp_is_refused_before_heating(run8, printer):
    """Heating to 40 °C cannot make a 170 °C minimum pass: refuse at once and leave the heater alone."""
    mark = printer.mark()
    failed(run8("8eject", "-t", "40"), 1, "min_extrude_temp")
    assert sent_by(printer, mark) == []
    assert printer.request("GET", "/api/printer/tool").json()["tool0"]["target"] == 0


# -- refusals while printing, allowed while paused ----------------------------------------------------------


@pytest.mark.parametrize(
    "command, args",
    [
        ("8jog", ["1", "0", "0"]),
        ("8jog", ["5"]),
        ("8home", []),
        ("8ex", ["5", "--force"]),
        ("8extrude", ["-1", "--force"]),
        ("8fex", ["5", "--force"]),
        ("8eject", ["--force"]),
    ],
)
def test_motion_is_refused_while_printing(run8, printer, command, args):
    start_print(printer)
    mark = printer.mark()
    proc = failed(run8(command, "-v", *args), 1, "refused: the printer is printing", "nothing sent")
    if command in ("8jog", "8home"):
        # Sent without a state read first; OctoPrint refuses it itself (409), then the state says why.
        assert [p.split()[:2] for p in posts(proc.stderr)] == [["POST", f"{printer.url}/api/printer/printhead"]]
        assert "< 409 CONFLICT" in proc.stderr, proc.stderr
    else:
        assert posts(proc.stderr) == []
    sent = sent_by(printer, mark)
    assert all(PRINT_MOVE.fullmatch(line) for line in sent), sent


def test_jog_and_extrude_are_allowed_while_paused(run8, printer):
    start_print(printer)
    printer.request("POST", "/api/job", json={"command": "pause", "action": "pause"})
    printer.wait_state("paused", timeout=10)
    mark = printer.mark()
    ok(run8("8jog", "0", "0", "5"))
    ok(run8("8ex", "5", "--force"))
    sent = [line for line in sent_by(printer, mark) if not PRINT_MOVE.fullmatch(line)]
    assert_lines(sent, jogged("X0 Y0 Z5") + EXTRUDE)
    assert "paused" in printer.flags()


def test_the_profile_is_read_again_after_its_ttl(printer, inverted_x):
    """A daemon runs for months: an axis changed in OctoPrint meanwhile is followed within PROFILE_TTL_S."""
    from octopanel.printers.httpclient import PROFILE_TTL_S
    from octopanel.printers.octoprint.client import Client

    clock = [1000.0]
    client = Client(printer.url, printer.api_key, now=lambda: clock[0])

    def inverted():
        return client.profile()["axes"]["x"]["inverted"]

    try:
        assert inverted() is True
        inverted_x(False)
        clock[0] += PROFILE_TTL_S - 1
        assert inverted() is True  # cached: a jog burst does not fetch it per detent
        clock[0] += 1
        assert inverted() is False
    finally:
        client.close()
