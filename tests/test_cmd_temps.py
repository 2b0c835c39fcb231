"""End to end: temperature targets with their caps, readings, and waiting for a temperature (8alarm, 8alarmq).

The Virtual Printer heats at 10 °C/s, cools at 2 °C/s and reports every 2 s; it starts at 21.3 °C."""

import json
import re
import time

import pytest
from cmdcheck import failed, ok, requests_made, sent_by

AMBIENT = 21.3


def targets(printer):
    tool = printer.request("GET", "/api/printer/tool").json()["tool0"]
    bed = printer.request("GET", "/api/printer/bed").json()["bed"]
    return tool["target"], bed["target"]


def targets_become(printer, want, timeout=10.0):
    """OctoPrint shows a new target with the printer's next temperature report, not at once: poll for it."""
    deadline = time.monotonic() + timeout
    while (got := targets(printer)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


# -- targets -------------------------------------------------------------------------------------------------


def test_settemp_and_setbed(run8, printer):
    mark = printer.mark()
    assert ok(run8("8settemp", "40")).stdout == "tool target 40 °C\n"
    assert ok(run8("8setbed", "30.5")).stdout == "bed target 30.5 °C\n"
    sent = sent_by(printer, mark)
    assert len(sent) == 2 and re.fullmatch(r"M104 (T0 )?S40", sent[0]) and sent[1] == "M140 S30.5", sent
    assert targets_become(printer, (40, 30.5)) == (40, 30.5)


@pytest.mark.parametrize(
    "command, value, text",
    [
        ("8settemp", "286", "settemp: temp: 286 is above the maximum 285"),
        ("8settemp", "1000", "above the maximum 285"),
        ("8setbed", "121", "setbed: temp: 121 is above the maximum 120"),
        ("8settemp", "-286", "a step of -286 is larger than the limit 285"),
        ("8setbed", "hot", "expected a number, got 'hot'"),
    ],
)
def test_targets_above_the_cap_are_refused(run8, printer, command, value, text):
    mark = printer.mark()
    proc = failed(run8(command, "-v", value), 2, text)
    assert requests_made(proc.stderr) == []
    assert sent_by(printer, mark) == []
    assert targets(printer) == (0, 0)


def test_caps_come_from_the_config(run8, printer, tmp_path):
    path = tmp_path / "home" / ".config" / "octopanel" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("max_tool_temp: 50\nmax_bed_temp: 40\n")
    failed(run8("8settemp", "51"), 2, "51 is above the maximum 50")
    failed(run8("8setbed", "41"), 2, "41 is above the maximum 40")
    ok(run8("8settemp", "50"))
    assert targets_become(printer, (50, 0)) == (50, 0)


# -- readings ------------------------------------------------------------------------------------------------


def test_gettemp_and_getbed(run8, printer):
    assert ok(run8("8gettemp")).stdout == f"{AMBIENT}\n"
    assert ok(run8("8getbed")).stdout == f"{AMBIENT}\n"
    printer.set_ambient(60)
    assert ok(run8("8gettemp")).stdout == "60\n"
    assert ok(run8("8getbed")).stdout == "60\n"


def test_gettemp_raw_and_getbed_raw(run8, printer):
    ok(run8("8settemp", "33"))
    tool = json.loads(ok(run8("8gettemp_raw")).stdout)
    assert tool["tool0"]["target"] == 33 and tool["tool0"]["actual"] >= AMBIENT
    bed = json.loads(ok(run8("8getbed_raw")).stdout)
    assert bed["bed"]["target"] == 0 and bed["bed"]["actual"] == pytest.approx(AMBIENT)
    assert json.loads(ok(run8("8getbed_raw", "--json")).stdout)["bed"]["target"] == 0


# -- waiting for a temperature --------------------------------------------------------------------------------


def test_alarm_rising_waits_then_beeps(run8, printer):
    ok(run8("8settemp", "45"))
    mark = printer.mark()
    started = time.monotonic()
    proc = ok(run8("8alarm", "t", "40", "--interval", "0.2", "--timeout", "30"))
    elapsed = time.monotonic() - started
    actual = float(re.fullmatch(r"tool reached (\d+\.\d) °C\n", proc.stdout).group(1))
    assert actual >= 40
    assert elapsed > 1.0  # it really waited: 21.3 → 40 °C takes about 2 s plus a 2 s report interval
    assert printer.request("GET", "/api/printer/tool").json()["tool0"]["actual"] >= 40
    assert sent_by(printer, mark) == ["M300 P500 S2000"]


def test_alarmq_bed_waits_quietly(run8, printer):
    ok(run8("8setbed", "35"))
    mark = printer.mark()
    proc = ok(run8("8alarmq", "b", "30", "--interval", "0.2", "--timeout", "30"))
    assert float(re.fullmatch(r"bed reached (\d+\.\d) °C\n", proc.stdout).group(1)) >= 30
    assert sent_by(printer, mark) == []  # no beep


def test_alarm_falling(run8, printer):
    before = printer.mark()
    printer.command("!!DEBUG:set_ambient 10")  # the idle hotend now cools from 21.3 °C at 2 °C/s
    printer.wait_sent(before, ["!!DEBUG:set_ambient 10"])  # else it may reach serial.log after the mark
    mark = printer.mark()
    proc = ok(run8("8alarm", "d", "t", "19", "--interval", "0.2", "--timeout", "30"))
    assert float(re.fullmatch(r"tool reached (\d+\.\d) °C\n", proc.stdout).group(1)) <= 19
    assert sent_by(printer, mark) == ["M300 P500 S2000"]


def test_alarm_legacy_form_already_reached(run8, printer):
    """`8alarm d t 50` on a 21 °C hotend: already below, so it beeps at once."""
    mark = printer.mark()
    started = time.monotonic()
    proc = ok(run8("8alarm", "d", "t", "50"))
    assert time.monotonic() - started < 5
    assert proc.stdout == f"tool reached {AMBIENT} °C\n"
    assert sent_by(printer, mark) == ["M300 P500 S2000"]


def test_alarmq_gives_up_after_the_timeout(run8, printer):
    mark = printer.mark()
    started = time.monotonic()
    failed(
        run8("8alarmq", "t", "100", "--interval", "0.2", "--timeout", "1"),
        1,
        f"tool still at {AMBIENT} °C after 1 s (waiting for 100 °C)",
    )
    assert 0.9 < time.monotonic() - started < 5
    assert sent_by(printer, mark) == []


def test_alarm_usage_errors(run8, printer):
    failed(run8("8alarm", "x", "t", "50"), 2, "cannot read arguments 'x t 50'")
    failed(run8("8alarm", "t"), 2, "cannot read arguments 't'")
    failed(run8("8alarmq", "t", "50", "--interval", "0"), 2, "interval: 0 is below the minimum 0.05")
