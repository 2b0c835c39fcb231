"""sd_notify as systemd sees it: the real daemon talking to a real AF_UNIX datagram socket the test listens on."""

import signal
import socket
import threading
import time

import pytest
from daemonproc import DaemonProc, clean_env, press, replay, wait_for
from evdev import ecodes as e

WATCHDOG_USEC = 200_000
PING_S = WATCHDOG_USEC / 2e6  # the daemon pings at half the interval, as sd_watchdog_enabled(3) advises


class NotifySocket:
    """Plays systemd's side of NOTIFY_SOCKET: records every datagram with its arrival time."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []  # (monotonic time, text)
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode()))

    def texts(self):
        with self.lock:
            return [text for _t, text in self.messages]

    def pings_since(self, start):
        with self.lock:
            return [t for t, text in self.messages if text == "WATCHDOG=1" and t >= start]

    def wait(self, predicate, what, timeout=10):
        wait_for(lambda: any(predicate(text) for text in self.texts()), timeout, what)

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def daemon(tmp_path, notify):
    procs = []

    def start(**env):
        env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(WATCHDOG_USEC), **env}
        proc = DaemonProc(tmp_path, ["--dry-run"], env=env, control=False)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


def first(texts, predicate, after=-1):
    return next(i for i, text in enumerate(texts) if i > after and predicate(text))


def test_ready_status_watchdog_reload_stop_in_order(daemon, notify):
    d = daemon()
    notify.wait(lambda t: t.startswith("READY=1"), "READY=1")
    start = time.monotonic()
    time.sleep(1.0)
    pings = notify.pings_since(start)
    assert 1.0 / PING_S * 0.5 <= len(pings) <= 1.0 / PING_S * 1.5, pings
    gaps = sorted(b - a for a, b in zip(pings, pings[1:], strict=False))
    assert 0.5 * PING_S < gaps[len(gaps) // 2] < 1.5 * PING_S, gaps  # typically every WatchdogSec/2

    d.tap(e.KEY_KPPLUS)  # mode step 1 -> 10: the status line changes
    notify.wait(lambda t: t.startswith("STATUS=") and "mode: step 10" in t, "a STATUS= update")
    d.proc.send_signal(signal.SIGHUP)
    notify.wait(lambda t: t.startswith("RELOADING=1"), "RELOADING=1")
    wait_for(lambda: sum(t.startswith("READY=1") for t in notify.texts()) == 2, 10, "READY=1 after the reload")
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0, d.output()
    notify.wait(lambda t: t == "STOPPING=1", "STOPPING=1", timeout=2)

    texts = notify.texts()
    ready = first(texts, lambda t: t.startswith("READY=1"))
    assert texts[ready].split("\n")[1].startswith("STATUS=keypad: connected (1 device) · printer:"), texts[ready]
    status = first(texts, lambda t: t.startswith("STATUS=") and "mode: step 10" in t, ready)
    reloading = first(texts, lambda t: t.startswith("RELOADING=1"), status)
    assert "\nMONOTONIC_USEC=" in texts[reloading]
    ready_again = first(texts, lambda t: t.startswith("READY=1"), reloading)
    assert "STATUS=" in texts[ready_again]
    assert texts[-1] == "STOPPING=1" and ready_again < len(texts) - 1
    assert {t.split("=")[0] for t in texts} == {"READY", "STATUS", "WATCHDOG", "RELOADING", "STOPPING"}


def test_watchdog_stops_while_the_loop_is_stalled_and_resumes(daemon, notify):
    d = daemon()
    notify.wait(lambda t: t.startswith("READY=1"), "READY=1")
    wait_for(lambda: len(notify.pings_since(0)) >= 3, 5, "the first pings")
    d.proc.send_signal(signal.SIGSTOP)  # the loop (and everything else) stalls on purpose
    try:
        wait_for(lambda: stopped(d.proc.pid), 5, "the process to stop")
        time.sleep(0.2)  # a ping sent just before the stop may still be in flight
        stalled = time.monotonic()
        time.sleep(5 * PING_S)
        assert notify.pings_since(stalled) == [], "WATCHDOG=1 arrived from a stopped process"
    finally:
        d.proc.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(lambda: len(notify.pings_since(resumed)) >= 2, 5, "pings after SIGCONT")
    assert d.close() == 0, d.output()


def stopped(pid):
    """True once the process is stopped by a signal (state T in /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def test_missing_notify_socket_is_logged_once_and_the_panel_keeps_working(daemon, tmp_path):
    d = daemon(NOTIFY_SOCKET=str(tmp_path / "no-such.sock"))
    d.tap(e.KEY_KP5)
    wait_for(lambda: "M117 panel 1" in d.output(), 10, "the key's action")
    time.sleep(3 * PING_S)  # several failed pings and status lines
    assert d.proc.poll() is None
    assert d.close() == 0, d.output()
    out = d.output()
    assert out.count("cannot notify systemd") == 1, out
    assert "Traceback" not in out


@pytest.mark.parametrize("journal_stream", [None, "1:2"], ids=["no-JOURNAL_STREAM", "JOURNAL_STREAM-elsewhere"])
def test_outside_systemd_logs_go_to_stderr(tmp_path, journal_stream):
    """No NOTIFY_SOCKET; JOURNAL_STREAM absent, or inherited but naming another stream than our stderr."""
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text('keys:\n  KEY_KP5: "msg hello"\n')
    recording = tmp_path / "rec.bin"
    recording.write_bytes(press(e.KEY_KP5, 1) + press(e.KEY_KP5, 0))
    env = clean_env(tmp_path)
    if journal_stream:
        env["JOURNAL_STREAM"] = journal_stream
    out = replay(recording, keymap, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"octopanel running with {keymap}" in out.stderr
    assert "end of recording" in out.stderr
    assert "KEY_KP5 press → would msg" in out.stdout and "M117 hello" in out.stdout
    assert "cannot notify" not in out.stderr  # outside systemd, notify is silent
