"""Every command through the daemon runs at most once (serial.log says so), and one daemon owns a socket path.

The fast CLI falls back in-process only when no daemon took the request; after that it reports the
daemon's reply or "may have run", never a second run. The clients here carry OCTOPRINT_URL, so a
fallback would really reach the printer and show up as a second move.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading

import pytest
from cmdcheck import sent_by
from conftest import BIN, LEAKY_PREFIXES
from daemonproc import DaemonProc, wait_for
from freezeproxy import FreezeProxy

MAY_HAVE_RUN = "may have run; check the printer; not retried"
JOG = re.compile(r"G0 X(-?[\d.]+)(?: F\d+)?")
SHORT_TIMEOUT = {"OCTOPANEL_SOCKET_TIMEOUT": "1.5"}


class WatchedProxy(FreezeProxy):
    """A FreezeProxy that keeps every byte it was handed, so a test knows a request is held by the freeze."""

    def freeze(self):
        self.frozen_at = len(self.seen)
        super().freeze()

    def wait_request(self, start):
        """Until a request starting so (its headers: requests sends the body apart) is held by the freeze."""
        wait_for(lambda: start in self.seen[self.frozen_at :], 10, f"{start!r} held by the frozen proxy")


@pytest.fixture
def daemons(tmp_path, printer):
    started = []

    def start(name="d", **kwargs):
        (tmp_path / name).mkdir(exist_ok=True)
        proc = DaemonProc(tmp_path / name, printer=printer, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def proxy(printer):
    p = WatchedProxy(printer.port)
    yield p
    p.close()


def through(daemons, proxy, printer):
    """A daemon talking to OctoPrint through the proxy, warmed up: a jog then needs only its own request."""
    d = daemons(env={"OCTOPRINT_URL": proxy.url})
    mark = printer.mark()
    assert d.ask("jog x=0.5")["ok"] and d.ask("jog x=-0.5")["ok"]  # reads the printer profile once
    sent_by(printer, mark)  # and they have reached serial.log before the test's own mark
    return d


def client(argv, sock_path, printer, home, env=None, popen=False):
    """An installed 8xxx command with the daemon's socket and also a working OctoPrint URL and key."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    full.update(
        HOME=str(home), OCTOPANEL_SOCKET=str(sock_path), OCTOPRINT_URL=printer.url, OCTOPRINT_API_KEY=printer.api_key
    )
    full.update(env or {})
    command = [str(BIN / argv[0]), *argv[1:]]
    if popen:
        return subprocess.Popen(command, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=full, capture_output=True, text=True, timeout=60)


def jogs(printer, mark):
    """The X distances of the jogs the printer received since mark."""
    return [float(m.group(1)) for m in map(JOG.fullmatch, sent_by(printer, mark)) if m]


def test_200_concurrent_clients_all_answered_and_no_jog_twice(daemons, printer, tmp_path):
    d = daemons()
    mark = printer.mark()
    values = [round((n + 1) / 100 * (-1) ** n, 2) for n in range(160)]  # distinct, and they cancel out
    procs = [client(("8jog", f"x={v:g}"), d.control, printer, tmp_path, popen=True) for v in values]
    procs += [client(("8status",), d.control, printer, tmp_path, popen=True) for _ in range(40)]
    outcomes = [(p.returncode, out, err) for p in procs for out, err in [p.communicate(timeout=90)]]
    ran, busy = [], 0
    for (code, out, err), v in zip(outcomes, values + [None] * 40):
        assert "Traceback" not in err and MAY_HAVE_RUN not in err, (code, out, err)
        if code == 1 and "daemon busy" in err and "nothing sent" in err:
            busy += 1
        elif v is None:
            assert code == 0 and out.startswith("Machine: "), (code, out, err)
        else:
            assert (code, out) == (0, f"jogged x={v:g}\n"), (code, out, err)
            ran.append(v)
    received = jogs(printer, mark)
    assert sorted(received) == sorted(ran), "a jog was lost or doubled"
    assert len(set(received)) == len(received)
    assert busy == 0  # 200 clients fit: busy is for more than control.MAX_CLIENTS at once
    assert "dropped" not in d.output()  # nobody's turn came too late (stale_s is for key presses)


def test_a_stalled_octoprint_times_the_client_out_as_may_have_run_and_nothing_runs_twice(
    daemons, printer, proxy, tmp_path
):
    d = through(daemons, proxy, printer)
    mark = printer.mark()
    proxy.freeze()
    env = {**SHORT_TIMEOUT, "OCTOPRINT_URL": proxy.url}  # the daemon's URL: else the client runs it itself
    first = client(("8jog", "x=7.77"), d.control, printer, tmp_path, env=env, popen=True)
    proxy.wait_request(b"POST /api/printer/printhead")
    second = client(("8jog", "x=8.88"), d.control, printer, tmp_path, env=env, popen=True)
    for proc in (first, second):
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1 and MAY_HAVE_RUN in err and "Traceback" not in err, err
    proxy.thaw()
    printer.wait_sent(mark, [JOG])
    d.wait_log("not run: its requester is gone")  # the second one's client left before its turn
    assert jogs(printer, mark) == [7.77]


def test_a_daemon_killed_mid_request_is_reported_and_not_rerun_in_process(daemons, printer, proxy, tmp_path):
    d = through(daemons, proxy, printer)
    mark = printer.mark()
    proxy.freeze()
    proc = client(("8jog", "x=6.66"), d.control, printer, tmp_path, env={"OCTOPRINT_URL": proxy.url}, popen=True)
    proxy.wait_request(b"POST /api/printer/printhead")
    d.proc.send_signal(signal.SIGKILL)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and MAY_HAVE_RUN in err and "Traceback" not in err, err
    proxy.thaw()  # the request the daemon had sent reaches OctoPrint now, or never
    assert len(jogs(printer, mark)) <= 1


class StubDaemon:
    """A socket that says the caller's settings are its own, then reads one request line and answers `reply`
    (bytes, or None: close without a word)."""

    def __init__(self, path, reply):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.requests = []
        threading.Thread(target=self._serve, args=(reply,), daemon=True).start()

    def _serve(self, reply):
        conn, _ = self.server.accept()
        with conn:
            lines = conn.makefile("rb")
            assert lines.readline().startswith(b'{"same_config": ')
            conn.sendall(b'{"ok": true, "same_config": true}\n')
            self.requests.append(lines.readline())
            if reply is not None:
                conn.sendall(reply)

    def close(self):
        self.server.close()


@pytest.mark.parametrize(
    "reply",
    [None, b"", b"{not json\n", b'{"ok": true, "message": "cut off', b"[1, 2]\n"],
    ids=["closed", "empty", "garbage", "no newline", "not an object"],
)
def test_a_lost_or_garbled_reply_after_the_request_went_out_is_may_have_run(printer, tmp_path, reply):
    path = tmp_path / "stub.sock"
    stub = StubDaemon(path, reply)
    mark = printer.mark()
    try:
        proc = client(("8jog", "x=5.55"), path, printer, tmp_path)
    finally:
        stub.close()
    assert proc.returncode == 1 and MAY_HAVE_RUN in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(stub.requests[0])["argv"] == ["jog", "x=5.55"]
    assert jogs(printer, mark) == []  # the stub ran nothing, and neither did the client


def test_no_daemon_on_the_path_runs_in_process_once(printer, tmp_path):
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a socket file nobody listens on: connection refused, nothing sent
    stale.close()
    mark = printer.mark()
    for where in (path, tmp_path / "missing.sock"):
        proc = client(("8jog", "x=4.44"), where, printer, tmp_path)
        assert (proc.returncode, proc.stdout) == (0, "jogged x=4.44\n"), proc.stderr
    assert jogs(printer, mark) == [4.44, 4.44]


def test_a_bad_socket_timeout_is_a_usage_error(printer, tmp_path):
    for bad in ("soon", "0", "-1", "nan"):
        proc = client(
            ("8jog", "x=3.33"), tmp_path / "missing.sock", printer, tmp_path, env={"OCTOPANEL_SOCKET_TIMEOUT": bad}
        )
        assert proc.returncode == 2 and "OCTOPANEL_SOCKET_TIMEOUT must be a number of seconds" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_clients_beyond_the_limit_are_told_busy_and_waiting_ones_are_never_dropped(daemons, printer, proxy, tmp_path):
    from octopanel.daemon.control import MAX_CLIENTS

    d = through(daemons, proxy, printer)
    mark = printer.mark()
    proxy.freeze()
    waiting = []
    try:
        for n in range(MAX_CLIENTS):
            sock = d.connect(timeout=30)
            sock.sendall(f"msg waiting {n}\n".encode())
            waiting.append(sock)
        proxy.wait_request(b"POST /api/printer/command")
        late = client(("8status",), d.control, printer, tmp_path, env={"OCTOPRINT_URL": proxy.url})
        assert late.returncode == 1 and "daemon busy" in late.stderr and "nothing sent" in late.stderr, late.stderr
        proxy.thaw()
        replies = [json.loads(sock.makefile("rb").readline()) for sock in waiting]
    finally:
        for sock in waiting:
            sock.close()
    assert [r.get("message") for r in replies] == [f"M117 waiting {n} sent" for n in range(MAX_CLIENTS)]
    sent = [line for line in sent_by(printer, mark) if line.startswith("M117 waiting ")]
    assert sent == [f"M117 waiting {n}" for n in range(MAX_CLIENTS)]


def test_force_is_refused_on_socket_lines_and_left_to_the_shell_on_the_fast_path(daemons, printer):
    d = daemons()
    mark = printer.mark()
    refused = d.ask("g --force M117 forced")
    assert refused["ok"] is False and refused["exit"] == 2 and "--force is a human's override" in refused["error"]
    assert d.ask(json.dumps({"argv": ["g", "--force", "M117 forced"]})) == {"ok": False, "local": True}
    assert [line for line in sent_by(printer, mark) if "forced" in line] == []


def run_second(tmp_path, control, *args, env=None):
    """`octopanel run` on an empty recording; Popen, so that a daemon that wrongly starts can be stopped."""
    recording = tmp_path / "empty.bin"
    recording.write_bytes(b"")
    keymap = tmp_path / "second.yaml"
    keymap.write_text("devices: []\nkeys:\n  KEY_KP5: msg second\n")
    full = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    full.update(HOME=str(tmp_path), OCTOPRINT_URL="http://127.0.0.1:9", OCTOPRINT_API_KEY="unused", **(env or {}))
    where = ["--control", str(control)] if control else []
    proc = subprocess.Popen(
        [str(BIN / "octopanel"), "run", "--keymap", str(keymap), *where, *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = proc.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:  # it started: stop it, and say so
        proc.kill()
        return None, proc.communicate()[0]
    return proc.returncode, output


@pytest.mark.parametrize("args", [("--dry-run", "--replay", "{recording}"), ()], ids=["dry-run replay", "run"])
def test_a_second_daemon_on_a_live_path_is_refused_and_the_first_keeps_serving(daemons, printer, tmp_path, args):
    d = daemons()
    before = os.stat(d.control)
    args = [a.format(recording=tmp_path / "empty.bin") for a in args]
    code, output = run_second(tmp_path, d.control, *args)
    assert "another octopanel daemon answers there" in output and "Traceback" not in output, output
    assert code == 2, output
    after = os.stat(d.control)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    mark = printer.mark()
    assert d.ask("msg first still serves")["ok"]
    printer.wait_sent(mark, ["M117 first still serves"])


def test_dry_run_and_replay_never_take_the_system_socket(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    service = socket.socket(socket.AF_UNIX)  # the service's socket, listening
    service.bind(str(run_dir / "control.sock"))
    service.listen(1)
    before = os.stat(run_dir / "control.sock")
    try:
        code, output = run_second(
            tmp_path,
            None,
            "--dry-run",
            "--replay",
            str(tmp_path / "empty.bin"),
            env={"RUNTIME_DIRECTORY": str(run_dir)},
        )
        assert code == 0, output
        assert sorted(p.name for p in run_dir.iterdir()) == ["control.sock"], output
        after = os.stat(run_dir / "control.sock")
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino), output
        assert "no control socket unless --control" in output
    finally:
        service.close()


def test_a_stale_socket_file_is_replaced(daemons, printer, tmp_path):
    (tmp_path / "d").mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "d" / "control.sock"))  # left by a daemon that died: nobody answers on it
    stale.close()
    d = daemons()
    d.wait_log("removed the stale control socket")
    mark = printer.mark()
    assert d.ask("msg on the new socket")["ok"]
    printer.wait_sent(mark, ["M117 on the new socket"])
