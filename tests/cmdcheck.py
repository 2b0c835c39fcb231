"""Checks shared by the end-to-end command tests: exit codes without tracebacks, what reached the printer."""

import re
import time
import uuid

PRINT_MOVE = re.compile(r"G1 X(180|20) F3000")  # the moves of VirtualPrinter.print_file()


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def failed(proc, code, *texts):
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    for text in texts:
        assert text in proc.stderr, proc.stderr
    return proc


def sent_by(printer, mark):
    """Every G-code line sent since mark, fenced by a probe line so that nothing late is missed."""
    probe = f"M117 fence {uuid.uuid4().hex[:8]}"
    printer.command(probe)
    sent = printer.wait_sent(mark, [probe])
    return sent[: sent.index(probe)]


def start_print(printer, n_moves=300):
    """Start the long print and return once its first moves went out (its opening G90 is before the mark)."""
    first = printer.mark()
    printer.print_file(n_moves)
    printer.wait_sent(first, [PRINT_MOVE])


def requests_made(stderr):
    """The request lines `-v` prints ('> METHOD URL [body]')."""
    return [line[2:] for line in stderr.splitlines() if line.startswith("> ")]


def posts(stderr):
    return [m for m in requests_made(stderr) if not m.startswith("GET ")]


def job(printer):
    return printer.request("GET", "/api/job").json()


def wait_targets(printer, tool=None, bed=None, timeout=10):
    """Wait until OctoPrint reports these targets: it learns them from the printer's next report (2 s here)."""
    deadline = time.monotonic() + timeout
    while True:
        now = (
            printer.request("GET", "/api/printer/tool").json().get("tool0", {}).get("target"),
            printer.request("GET", "/api/printer/bed").json().get("bed", {}).get("target") if bed is not None else None,
        )
        if now == (tool, bed):
            return
        assert time.monotonic() < deadline, f"targets {now}, expected {(tool, bed)}"
        time.sleep(0.1)
