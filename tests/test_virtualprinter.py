"""The test harness itself: a real OctoPrint, G-code read back from serial.log, state polling, reset."""

import re

import pytest
import requests

from octopanel.sandbox.virtualprinter import VirtualPrinter


def test_raw_gcode_shows_up_in_sent_since(printer):
    mark = printer.mark()
    response = requests.post(
        printer.url + "/api/printer/command",
        json={"commands": ["M117 hello"]},
        headers={"X-Api-Key": printer.api_key},
        timeout=10,
    )
    assert response.status_code == 204
    assert printer.wait_sent(mark, ["M117 hello"]) == ["M117 hello"]


def test_jog_is_bracketed_by_relative_mode(printer):
    mark = printer.mark()
    printer.request("POST", "/api/printer/printhead", json={"command": "jog", "x": 10, "y": -5, "z": 1})
    sent = printer.wait_sent(mark, ["G91", re.compile(r"G0 X10 Y-5 Z1 F\d+"), "G90"])
    assert len(sent) == 3


def test_print_file_reaches_printing_and_sends_unnumbered_moves(printer):
    flags = printer.print_file()
    assert {"operational", "printing"} <= flags
    mark = printer.mark()
    sent = printer.wait_sent(mark, ["G1 X180 F3000", "G1 X20 F3000"])
    assert not any(line.startswith("N") or "*" in line for line in sent)
    name = printer.request("GET", "/api/job").json()["job"]["file"]["name"]
    assert re.fullmatch(r"octopanel-long-\d+\.gcode", name), name  # a new name each time (see print_file)


def test_bad_key_is_rejected(printer):
    bad = {"X-Api-Key": "not-the-key"}
    assert requests.get(printer.url + "/api/printer", headers=bad, timeout=10).status_code == 403
    # OctoPrint checks CSRF before the key on POST, so a bad key there is a 400.
    response = requests.post(
        printer.url + "/api/printer/command", json={"commands": ["M117 x"]}, headers=bad, timeout=10
    )
    assert response.status_code == 400 and "CSRF" in response.text


def test_admin_key_works_too(printer):
    ok = requests.get(printer.url + "/api/printer", headers={"X-Api-Key": printer.admin_key}, timeout=10)
    assert ok.status_code == 200


def test_reset_undoes_a_print_targets_and_factors(printer):
    printer.print_file()
    printer.request("POST", "/api/printer/printhead", json={"command": "feedrate", "factor": 150})
    printer.request("POST", "/api/printer/tool", json={"command": "target", "targets": {"tool0": 200}})
    printer.reset()
    assert {"operational", "ready"} <= printer.flags()
    assert printer.request("GET", "/api/printer/tool").json()["tool0"]["target"] == 0
    assert printer.request("GET", "/api/job").json()["job"]["file"]["name"] is None


def test_reset_reconnects_after_a_fatal_error(printer):
    printer.command("!!DEBUG:trigger_fatal_error_marlin")
    printer.wait_state((), absent="operational")
    printer.reset()
    assert "ready" in printer.flags()


def test_set_ambient_gives_a_hot_nozzle_at_once(printer):
    printer.set_ambient(200)
    assert printer.request("GET", "/api/printer/tool").json()["tool0"]["actual"] == 200
    printer.reset()
    assert printer.request("GET", "/api/printer/tool").json()["tool0"]["actual"] < 30


def test_sent_since_parses_a_serial_log(tmp_path):
    vp = VirtualPrinter(basedir=tmp_path)  # never started: sent_since only reads the file
    vp.serial_log.parent.mkdir()
    vp.serial_log.write_text(
        '2026-11-23 19:04:53,316 - Changing monitoring state from "Offline" to "Operational"\n'
        "2026-11-23 19:04:53,316 - Send: N0 M110 N0*125\n"
        "2026-11-23 19:04:53,317 - Send: M117 hello\n"
        "2026-11-23 19:04:53,318 - Recv: echo:hello\n"
        "2026-11-23 19:04:53,319 - Send: N12 G0 X10*85\n"
        "2026-11-23 19:04:53,320 - Send: M105\n"
        "2026-11-23 19:04:53,321 - Send: G1 X"
    )  # still being written
    assert vp.sent_since(0) == ["M117 hello", "G0 X10"]
    assert vp.sent_since(0, raw=True) == ["M110 N0", "M117 hello", "G0 X10", "M105"]
    assert vp.mark() == vp.serial_log.stat().st_size


def test_wait_sent_times_out_with_what_was_sent(printer):
    mark = printer.mark()
    printer.command("M117 one")
    with pytest.raises(TimeoutError, match=r"received \['M117 one'\], expected \['M117 two'\]"):
        printer.wait_sent(mark, ["M117 two"], timeout=0.3)
