"""End to end: print jobs on a real running print: start, pause/resume (stateless), restart, cancel, waitend."""

import re
import time
import uuid
from pathlib import Path

import pytest
from cmdcheck import PRINT_MOVE, failed, job, ok, posts, sent_by, start_print, wait_targets
from conftest import BIN, _run
from daemonproc import DaemonProc

ACTIVE = {"printing", "paused", "pausing", "resuming", "cancelling", "finishing"}


def pause(printer):
    printer.request("POST", "/api/job", json={"command": "pause", "action": "pause"})
    printer.wait_state("paused", timeout=10)


def upload(printer, name, n_moves=300):
    text = "G90\n" + "".join(f"G1 X{180 if i % 2 == 0 else 20} F3000\n" for i in range(n_moves))
    response = printer.request(
        "POST", "/api/files/local", files={"file": (name, text)}, data={"select": "false", "print": "false"}
    )
    assert response.status_code == 201, response.text


# -- start ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["8start", "8print"])
def test_start_the_selected_file(run8, printer, command):
    name = f"start-{uuid.uuid4().hex[:6]}.gcode"
    upload(printer, name)
    ok(run8("8fselect", name))
    assert "printing" not in printer.flags()
    mark = printer.mark()
    assert ok(run8(command)).stdout == "print started\n"
    printer.wait_state("printing", timeout=10)
    assert job(printer)["job"]["file"]["name"] == name
    printer.wait_sent(mark, ["G90", PRINT_MOVE])


def test_start_without_a_selected_file_is_refused(run8, printer):
    assert job(printer)["job"]["file"]["name"] is None  # reset() reconnected: nothing selected
    mark = printer.mark()
    proc = failed(
        run8("8start", "-v"), 1, "no file is selected: select one with 8fselect or use 8runfile", "nothing sent"
    )
    assert posts(proc.stderr) == []
    assert sent_by(printer, mark) == []
    assert "printing" not in printer.flags()


def test_start_while_printing_is_refused(run8, printer):
    start_print(printer)
    proc = failed(run8("8print", "-v"), 1, "start refused: the printer is printing")
    assert posts(proc.stderr) == []


# -- pause and resume: stateless ----------------------------------------------------------------------------


def test_pause_twice_stays_paused(run8, printer):
    start_print(printer)
    assert ok(run8("8pause")).stdout == "paused\n"
    printer.wait_state("paused", timeout=10)
    proc = ok(run8("8pause", "-v"))
    assert proc.stdout == "already paused: nothing sent\n"
    assert posts(proc.stderr) == []
    flags = printer.flags()
    assert "paused" in flags and "printing" not in flags


@pytest.mark.parametrize("closed, fd", [("<&-", 0), (">&-", 1), ("2>&-", 2)])
@pytest.mark.parametrize("path", ["in-process", "through the daemon"])
def test_pause_from_a_script_with_a_closed_std_stream(printer, tmp_path, closed, fd, path):
    """A runout script running `8pause 2>&-`: Python leaves the closed stream None; the pause must still go
    out (it used to fail with an internal error before sending anything), with no traceback."""
    start_print(printer)
    env, daemon = {"OCTOPANEL_NO_DAEMON": "1"}, None
    if path == "through the daemon":
        daemon = DaemonProc(tmp_path, printer=printer)
        env = {"OCTOPANEL_SOCKET": str(daemon.control), "OCTOPRINT_API_KEY": None}  # the daemon's URL, no key
    try:
        proc = _run(Path("/bin/sh"), ["-c", f'exec "$0" "$@" {closed}', BIN / "8pause"], printer, tmp_path, env=env)
        assert (proc.returncode, proc.stderr) == (0, ""), (fd, proc.stdout, proc.stderr)
        assert proc.stdout == ("" if fd == 1 else "paused\n")
        printer.wait_state("paused", timeout=10)
    finally:
        if daemon is not None:
            daemon.kill()


def test_pause_repeated_quickly_never_resumes(run8, printer):
    """A runout sensor firing three times in a row: the second and third calls land while pausing or paused."""
    start_print(printer)
    outputs = [ok(run8("8pause")).stdout for _ in range(3)]
    assert outputs[0] == "paused\n"
    assert all(out in ("already pausing: nothing sent\n", "already paused: nothing sent\n") for out in outputs[1:])
    printer.wait_state("paused", timeout=10)
    mark = printer.mark()
    assert not [line for line in sent_by(printer, mark) if PRINT_MOVE.fullmatch(line)]  # really stopped moving
    assert "paused" in printer.flags()


def test_pause_when_idle_sends_nothing(run8, printer):
    proc = ok(run8("8pause", "-v"))
    assert proc.stdout == "not printing (printer is idle (operational, not printing)): nothing sent\n"
    assert posts(proc.stderr) == []


def test_resume_while_printing_sends_nothing(run8, printer):
    start_print(printer)
    proc = ok(run8("8resume", "-v"))
    assert proc.stdout == "not paused (printer is printing): nothing sent\n"
    assert posts(proc.stderr) == []
    assert "printing" in printer.flags()


def test_resume_a_paused_print(run8, printer):
    start_print(printer)
    pause(printer)
    mark = printer.mark()
    assert ok(run8("8resume")).stdout == "resumed\n"
    printer.wait_state("printing", timeout=10, absent={"paused"})
    printer.wait_sent(mark, [PRINT_MOVE])  # moving again
    proc = ok(run8("8resume", "-v"))
    assert "nothing sent" in proc.stdout and posts(proc.stderr) == []


def test_pause_raw_toggles(run8, printer):
    start_print(printer)
    assert ok(run8("8pause_raw")).stdout == "pause toggle sent\n"
    printer.wait_state("paused", timeout=10)
    ok(run8("8pause_raw"))
    printer.wait_state("printing", timeout=10, absent={"paused", "pausing"})


def test_pause_raw_when_idle_reports_the_refusal(run8, printer):
    failed(run8("8pause_raw"), 1, "8pause_raw: the printer refused:")


# -- restart -----------------------------------------------------------------------------------------------------


def test_restart_a_paused_print_from_the_beginning(run8, printer):
    start_print(printer)
    pause(printer)
    mark = printer.mark()
    assert ok(run8("8restart")).stdout == "print restarted from the beginning\n"
    printer.wait_state("printing", timeout=10, absent={"paused"})
    sent = printer.wait_sent(mark, ["G90", PRINT_MOVE])  # the file's first line again
    assert sent[0] == "G90", sent


def test_restart_while_printing_is_refused(run8, printer):
    start_print(printer)
    proc = failed(run8("8restart", "-v"), 1, "restart refused: the printer is printing (restart needs it paused)")
    assert posts(proc.stderr) == []


# -- cancel and xcancel ----------------------------------------------------------------------------------------


def test_cancel_breaks_the_heat_up_stops_the_timer_and_cancels(run8, printer):
    start_print(printer)
    mark = printer.mark()
    proc = ok(run8("8cancel", "-v"))
    assert proc.stdout == "print cancelled\n"
    assert posts(proc.stderr) == [
        f'POST {printer.url}/api/printer/command {{"commands": ["M108", "M77"]}}',
        f'POST {printer.url}/api/job {{"command": "cancel"}}',
    ]
    printer.wait_state("operational", timeout=10, absent=ACTIVE)
    sent = [line for line in sent_by(printer, mark) if not PRINT_MOVE.fullmatch(line)]
    # OctoPrint sends M108 out of band as an emergency command, and may log it twice; M77 follows, then
    # OctoPrint's own cancel script (M84 ...).
    assert sent[0] == "M108" and "M77" in sent and sent.index("M77") < sent.index("M84"), sent
    assert job(printer)["state"] == "Operational"


def test_cancel_when_idle_sends_nothing(run8, printer):
    mark = printer.mark()
    proc = ok(run8("8cancel", "-v"))
    assert proc.stdout == "not printing (printer is idle (operational, not printing)): nothing sent\n"
    assert posts(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_cancel_a_paused_print(run8, printer):
    start_print(printer)
    pause(printer)
    ok(run8("8cancel"))
    printer.wait_state("operational", timeout=10, absent=ACTIVE)


def test_xcancel_keeps_the_targets_and_homes(run8, printer):
    start_print(printer)
    ok(run8("8settemp", "50"))
    ok(run8("8setbed", "40"))
    wait_targets(printer, tool=50, bed=40)  # xcancel keeps the targets OctoPrint knows of
    mark = printer.mark()
    proc = ok(run8("8xcancel", "--timeout", "20"))
    assert proc.stdout == "print cancelled, targets kept (tool 50 °C, bed 40 °C), homed\n"
    assert not ACTIVE & printer.flags()
    sent = [line for line in sent_by(printer, mark) if not PRINT_MOVE.fullmatch(line)]
    tail = sent[sent.index("M77") :]
    # OctoPrint's cancel script turns the heaters off; xcancel sets them back, then homes.
    wanted = [re.compile(r"M104 (T0 )?S50"), "M140 S40", "G91", "G28 X0 Y0 Z0", "G90"]
    it = iter(tail)
    assert all(any(w.fullmatch(s) if isinstance(w, re.Pattern) else w == s for s in it) for w in wanted), sent
    tool = printer.request("GET", "/api/printer/tool").json()["tool0"]
    bed = printer.request("GET", "/api/printer/bed").json()["bed"]
    assert (tool["target"], bed["target"]) == (50, 40)


def test_xcancel_when_idle_sends_nothing(run8, printer):
    mark = printer.mark()
    assert "nothing sent" in ok(run8("8xcancel")).stdout
    assert sent_by(printer, mark) == []


# -- waitend -----------------------------------------------------------------------------------------------------


def test_waitend_returns_when_the_print_ends(run8, printer):
    start_print(printer, n_moves=12)  # about 2 s of printing
    started = time.monotonic()
    assert ok(run8("8waitend", "--interval", "0.2", "--timeout", "60")).stdout == "printer is operational\n"
    assert time.monotonic() - started < 30
    assert not ACTIVE & printer.flags()
    assert job(printer)["progress"]["completion"] == pytest.approx(100)


def test_waitend_gives_up_after_its_timeout(run8, printer):
    start_print(printer)
    started = time.monotonic()
    failed(run8("8waitend", "--interval", "0.2", "--timeout", "1"), 1, "gave up waiting for the print to end after 1 s")
    assert 0.9 < time.monotonic() - started < 10
    assert "printing" in printer.flags()


def test_waitend_when_idle_returns_at_once(run8, printer):
    started = time.monotonic()
    ok(run8("8waitend", "--interval", "5"))
    assert time.monotonic() - started < 4


def test_waitend_fails_when_the_printer_disconnects(run8, printer):
    printer.disconnect()
    failed(
        run8("8waitend", "--interval", "0.2", "--timeout", "5"),
        1,
        "the printer is disconnected: the print will not end normally",
    )


@pytest.fixture
def no_heated_bed(printer):
    """The default profile without a heated bed (OctoPrint then answers 409 on /api/printer/bed), restored after."""

    def patch(heated):
        response = printer.request("PATCH", "/api/printerprofiles/_default", json={"profile": {"heatedBed": heated}})
        assert response.status_code == 200 and response.json()["profile"]["heatedBed"] is heated, response.text

    patch(False)
    try:
        yield
    finally:
        patch(True)


def test_xcancel_on_a_printer_without_a_heated_bed(run8, printer, no_heated_bed):
    start_print(printer)
    ok(run8("8settemp", "45"))
    wait_targets(printer, tool=45)
    mark = printer.mark()
    proc = ok(run8("8xcancel", "--timeout", "20"))
    assert proc.stdout.startswith("print cancelled, targets kept (tool 45 °C")
    assert not ACTIVE & printer.flags()
    sent = sent_by(printer, mark)
    assert "G28 X0 Y0 Z0" in sent and not [line for line in sent if line.startswith("M140")], sent
    assert printer.request("GET", "/api/printer/tool").json()["tool0"]["target"] == 45
