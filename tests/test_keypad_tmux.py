"""`octopanel keypad` in a real terminal: a detached tmux session, keys sent with send-keys, the status line
read with capture-pane, and what reached the Virtual Printer read from serial.log."""

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import BIN
from daemonproc import clean_env

from octopanel.sandbox.octoprint_venv import cache_root
from octopanel.sandbox.seriallog import SerialLog

TMUX = shutil.which("tmux")
WIDTH, HEIGHT = 200, 30
START_TIMEOUT_S = 60  # --virtual starts its own OctoPrint first
WAIT_S = 10


class Tmux:
    """One private tmux server (its own socket) running one session of a fixed size."""

    def __init__(self, command, env):
        self.dir = Path(tempfile.mkdtemp(prefix="kp-"))  # a short path: a socket's is at most 107 bytes
        self.base = [TMUX, "-S", str(self.dir / "tmux.sock")]
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", "kp", "-x", str(WIDTH), "-y", str(HEIGHT), command],
            env=env,  # a new server takes the environment of the client that starts it
            check=True,
            timeout=10,
        )

    def send(self, *keys, literal=False):
        subprocess.run(
            [*self.base, "send-keys", "-t", "kp", *(["-l"] if literal else []), *keys], check=True, timeout=5
        )

    def type(self, keys, gap_s):
        """Type literal keys gap_s apart through one control-mode client: no process started per key, so
        the gaps hold on a loaded machine (autorepeat and double presses are told apart by them)."""
        client = subprocess.Popen(
            [*self.base, "-C", "attach-session", "-t", "kp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        try:
            for key in keys:
                client.stdin.write(f"send-keys -t kp -l {key}\n")
                client.stdin.flush()
                time.sleep(gap_s)
        finally:
            client.stdin.close()  # control mode: the end of its input detaches the client
            client.wait(timeout=5)

    def screen(self):
        result = subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "kp"], capture_output=True, text=True, timeout=5
        )
        return result.stdout

    def wait(self, pattern, timeout=WAIT_S):
        """The first match of the regex pattern on the screen; fails with the screen after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            match = re.search(pattern, screen)
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout} s no {pattern!r} on the screen:\n{screen}")
            time.sleep(0.1)

    def kill(self):
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def terminal(tmp_path):
    """Start a keypad command in tmux inside `sh`, which records the terminal settings before and after it
    and its exit code; yields a starter, kills the tmux server at the end whatever happened."""
    if TMUX is None:
        pytest.fail("tmux is not installed (scripts/deps.sh installs it; run ./test.sh)")
    started = []

    def start(args, printer=None):
        env = clean_env(tmp_path, OCTOPANEL_CACHE=str(cache_root()))  # the suite's OctoPrint, installed once
        env.pop("TMUX", None)  # a test run from inside tmux: the new server must not take this one's
        if printer is not None:  # the configured printer: in the environment, never on a command line
            env.update(OCTOPRINT_URL=printer.url, OCTOPRINT_API_KEY=printer.api_key)
        t = tmp_path
        command = (
            f"stty -g > {t}/before; {BIN}/octopanel keypad {args}; echo $? > {t}/rc; stty -g > {t}/after; sleep 60"
        )
        started.append(Tmux(command, env))
        return started[-1]

    yield start
    for tmux in started:
        tmux.kill()


def wait_sent(log, mark, expected, timeout=WAIT_S):
    return log.wait_sent(mark, expected, timeout)


def exited(tmp_path, timeout=WAIT_S):
    """The keypad's exit code, once sh wrote it; and whether the terminal settings were restored."""
    deadline = time.monotonic() + timeout
    while not (tmp_path / "after").exists() or not (tmp_path / "after").read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"the keypad did not exit within {timeout} s")
        time.sleep(0.05)
    return int((tmp_path / "rc").read_text()), (tmp_path / "before").read_text() == (tmp_path / "after").read_text()


@pytest.mark.octoprint  # its own, started by --virtual
def test_keypad_virtual_keys_jog_change_step_and_repeat(terminal, tmp_path):
    tmux = terminal("--virtual")
    log = SerialLog(Path(tmux.wait(r"serial log: (\S+)", START_TIMEOUT_S).group(1)))
    tmux.wait(r"step 1 \| printer: Operational", START_TIMEOUT_S)
    mark = log.mark()
    tmux.send("KP8")  # the numeric keypad's 8, in application keypad mode: ESC O x
    wait_sent(log, mark, ["G91", re.compile(r"G0 Y1 F\d+"), "G90"])
    tmux.wait(r"KEY_KP8 press: jogged y=1")
    mark = log.mark()
    tmux.send("+", literal=True)  # NumLock on, normal mode: the plain character
    wait_sent(log, mark, ["M117 mode step: 10"])
    tmux.wait(r"step 10 \| ")
    mark = log.mark()
    tmux.send("Up")  # NumLock off: the 8 key sends the cursor key
    wait_sent(log, mark, [re.compile(r"G0 Y10 F\d+")])
    mark = log.mark()
    tmux.send("4", literal=True)  # held for 1.2 s: the terminal's autorepeat (0.5 s delay, X's 25 per second)
    time.sleep(0.5)
    tmux.type("4" * 18, 0.04)
    tmux.wait(r"KEY_KP4 repeat: jogged x=-10")
    sent = log.settle(mark, quiet=0.5)
    assert sent.count("G0 X-10 F6000") >= 3, sent
    mark = log.mark()
    tmux.send("q", literal=True)
    assert exited(tmp_path) == (0, True)  # exit code 0, and the terminal's settings as they were
    assert log.settle(mark, quiet=0.5) == []  # leaving the keypad pressed nothing


def test_keypad_enter_pauses_a_print_on_the_configured_printer_and_ctrl_c_restores_the_terminal(
    terminal, tmp_path, printer
):
    printer.print_file()
    tmux = terminal("", printer)
    tmux.wait(r"printer: Printing", START_TIMEOUT_S)
    mark = printer.mark()
    tmux.type("00", 0.1)  # 0 then 0 again soon after: a double press, fan off
    wait_sent(printer, mark, ["M107"])
    assert "M106 S255" not in printer.sent_since(mark)  # the double press, not two presses
    tmux.send("KPEnter")
    printer.wait_state("paused", timeout=WAIT_S)
    tmux.wait(r"printer: Paused .*KEY_KPENTER press: paused")
    tmux.send("C-c")
    assert exited(tmp_path) == (0, True)
    assert "paused" in printer.flags()


def test_keypad_needs_a_terminal():
    result = subprocess.run(
        [sys.executable, "-m", "octopanel", "keypad", "--virtual"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result
    assert "octopanel keypad: standard input is not a terminal" in result.stderr
    assert "Starting" not in result.stdout  # refused before anything was started
