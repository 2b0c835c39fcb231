"""A worker hung in a request: the daemon says so in its systemd STATUS, stops the watchdog, exits on SIGTERM.

Every request now has a total deadline (client.py), so a worker stuck past the HTTP timeouts is a bug or a
hang outside HTTP (a DNS lookup, a TLS set-up): health.py is the defence in depth. The watchdog test hangs
the worker in a fake client (the only way to hang it now); the SIGTERM test keeps the real daemon busy in a
request to a server that drips one header byte every 0.5 s, under a 60 s read_timeout.
"""

import signal
import socket
import threading
import time

import pytest
from daemonproc import DaemonProc, wait_for
from fakeprinter import FakePrinter
from inprocdaemon import InProcessDaemon
from test_notify import NotifySocket

from octopanel import settings as settings_mod
from octopanel.daemon.notify import Notifier

WATCHDOG_USEC = 400_000  # pings every 0.2 s
DRIP_S = 0.5
CONFIG = "connect_timeout: 1\nread_timeout: 1\n"  # health.py: slow after 1+1+5 = 7 s, hung after 3*2+5 = 11 s
SLOW_AFTER_S, HUNG_AFTER_S = 7.0, 11.0


class DripServer:
    """Accepts on 127.0.0.1:0 and answers every request with a status line, then one header byte per DRIP_S."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = []  # monotonic times
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _drip(self, conn):
        with conn:
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                while not self.stop.wait(DRIP_S):
                    conn.sendall(b"a")
            except OSError:
                pass  # the daemon went away

    def close(self):
        self.stop.set()
        self.sock.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def drip():
    server = DripServer()
    yield server
    server.close()


@pytest.fixture
def notify(tmp_path):
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


def start(tmp_path, drip, notify):
    """The real daemon, its worker held in a request for up to 60 s by the dripping server."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"connect_timeout: 1\nread_timeout: 60\nurl: {drip.url}\napi_key: {'A' * 32}\n")
    env = {
        "NOTIFY_SOCKET": notify.path,
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
        "OCTOPRINT_URL": None,
        "OCTOPRINT_API_KEY": None,
    }
    return DaemonProc(tmp_path, ["--config", str(config_file)], env=env, control=False)


def test_a_hung_worker_shows_as_unreachable_then_stops_the_watchdog(tmp_path, notify, caplog, monkeypatch):
    """Before: STATUS said "printer: unknown" for ever and the pings went on, so systemd never restarted it."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(CONFIG)
    printer = FakePrinter()
    printer.gate.clear()  # every call blocks: the worker's start-up state read never returns
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)  # systemd-python's sd_notify reads it from the process
    notifier = Notifier(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    d = InProcessDaemon(
        tmp_path,
        'keys:\n  KEY_KP5: "msg a"\n',
        printer,
        notifier=notifier,
        settings=settings_mod.load(config_path=str(config_file), env={}),
    )
    stuck_at = time.monotonic()
    d.start()
    try:
        notify.wait(
            lambda text: "OctoPrint unreachable: no answer for" in text,
            "a STATUS saying unreachable",
            timeout=SLOW_AFTER_S + 20,
        )
        with notify.lock:
            status_at = next(t for t, text in notify.messages if "OctoPrint unreachable: no answer" in text)
        notify.wait(
            lambda text: "watchdog stopped" in text, "a STATUS saying the watchdog stopped", timeout=HUNG_AFTER_S + 20
        )
        with notify.lock:
            hung_at = next(t for t, text in notify.messages if "watchdog stopped" in text)
        assert "no longer pinging the systemd watchdog" in caplog.text
        time.sleep(1.5)  # seven ping intervals: none may come now
        assert notify.pings_since(stuck_at + SLOW_AFTER_S), "the loop pinged while the worker was merely slow"
        assert notify.pings_since(hung_at + 0.3) == []
        print(
            f"\nunreachable in STATUS {status_at - stuck_at:.1f} s, watchdog stopped {hung_at - stuck_at:.1f} s "
            "after the worker got stuck"
        )
        assert SLOW_AFTER_S - 0.5 <= status_at - stuck_at < SLOW_AFTER_S + 10
        assert HUNG_AFTER_S - 0.5 <= hung_at - stuck_at < HUNG_AFTER_S + 10
        printer.gate.set()  # free again: the pings come back
        freed = time.monotonic()
        wait_for(lambda: notify.pings_since(freed), 10, "pings after the worker came free")
    finally:
        printer.gate.set()
        d.stop()


def test_sigterm_ends_a_daemon_whose_worker_is_stuck_within_2_s(tmp_path, drip, notify):
    """Before: stop() joined the stuck worker for 5 s."""
    p = start(tmp_path, drip, notify)
    try:
        wait_for(lambda: drip.accepted, 10, "the start-up state read to reach the server")
        time.sleep(1.0)  # the worker is inside its request now
        t0 = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        code = p.proc.wait(timeout=15)
        elapsed = time.monotonic() - t0
        print(f"\nSIGTERM to exit: {elapsed:.2f} s")
        assert code == 0, p.output()
        assert elapsed < 2.0, p.output()
        assert "STOPPING=1" in notify.texts()
    finally:
        p.kill()
