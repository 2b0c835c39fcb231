"""Long-running commands show progress on a terminal and stay quiet when piped."""

import os
import pty
import subprocess

from conftest import BIN, LEAKY_PREFIXES


def on_tty(printer, tmp_path, *argv):
    """Run an installed command with stdout and stderr on a pseudo-terminal; (exit code, everything shown)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env.update(HOME=str(tmp_path), OCTOPRINT_URL=printer.url, OCTOPRINT_API_KEY=printer.api_key)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / argv[0]), *argv[1:]], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=60), shown.decode(errors="replace")


def test_alarm_shows_progress_on_a_terminal(printer, tmp_path):
    printer.wait_temperatures()
    code, shown = on_tty(printer, tmp_path, "8alarmq", "d", "t", "500", "--interval", "0.1")
    assert code == 0, shown
    assert "tool: " in shown and "°C → 500 °C (falling)" in shown and "\r" in shown


def test_alarm_is_quiet_when_piped(run8, printer):
    printer.wait_temperatures()
    proc = run8("8alarmq", "d", "t", "500", "--interval", "0.1")
    assert proc.returncode == 0
    assert proc.stderr == "" and proc.stdout.startswith("tool reached")


def test_alarm_gives_up_at_its_timeout_on_a_terminal_too(printer, tmp_path):
    code, shown = on_tty(printer, tmp_path, "8alarmq", "t", "250", "--interval", "0.1", "--timeout", "0.5")
    assert code == 1
    assert "after 0.5 s (waiting for 250 °C)" in shown


def test_waitend_shows_progress_on_a_terminal(printer, tmp_path):
    printer.print_file(n_moves=20)
    code, shown = on_tty(printer, tmp_path, "8waitend", "--interval", "0.2", "--timeout", "60")
    assert code == 0, shown
    assert "waiting for the print to end: printing" in shown


def test_upload_shows_a_progress_bar_for_a_large_file_on_a_terminal(printer, tmp_path):
    big = tmp_path / "big.gcode"
    big.write_text("G1 X10 Y10 F3000 ; padding to make the file large\n" * 40000)  # ~2 MB
    code, shown = on_tty(printer, tmp_path, "8upload", str(big))
    assert code == 0, shown
    assert "uploading [" in shown and "100 %" in shown
    assert "uploaded big.gcode" in shown


def test_upload_of_a_large_file_is_quiet_when_piped(run8, printer, tmp_path):
    big = tmp_path / "big.gcode"
    big.write_text("G1 X10 Y10 F3000 ; padding to make the file large\n" * 40000)
    proc = run8("8upload", str(big))
    assert proc.returncode == 0 and proc.stderr == ""
