"""The caller's own settings rule an 8xxx command whether or not a daemon runs: same exit, output and G-code.

A daemon with its own config file serves the real OctoPrint; the caller has a config of its own (stricter
limits, another printer, the same values in another file). Each command runs once through a running daemon
and once with no daemon there, against the same printer.
"""

import json
import os
import socket
import subprocess
import threading

import pytest
from cmdcheck import sent_by
from conftest import BIN, LEAKY_PREFIXES
from daemonproc import DaemonProc


def closed_port():
    """A loopback port nobody listens on: "another printer" that cannot be reached."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def daemon(octoprint, tmp_path_factory):
    home = tmp_path_factory.mktemp("daemon")
    conf = home / "daemon.yaml"
    conf.write_text(f"url: {octoprint.url}\n")
    proc = DaemonProc(home, args=("--config", str(conf)), printer=octoprint, env={"OCTOPRINT_URL": None})
    yield proc, conf
    proc.kill()


def run(argv, home, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    full.update(HOME=str(home), **env)
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], env=full, capture_output=True, text=True, timeout=60)


def both_ways(argv, printer, daemon, home, env):
    """(through the running daemon, with no daemon): each (exit, stdout, stderr, G-code sent)."""
    proc, _conf = daemon
    outcomes = []
    for sock in (proc.control, home / "no-daemon.sock"):
        printer.reset()
        mark = printer.mark()
        done = run(argv, home, {**env, "OCTOPANEL_SOCKET": str(sock)})
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
        outcomes.append((done.returncode, done.stdout, done.stderr, sent_by(printer, mark)))
    return outcomes


def personal(home, text):
    path = home / ".config" / "octopanel" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# (what the caller's personal config says, the command, its exit code on both paths)
CASES = [
    ("max_tool_temp: 200\n", ("8settemp", "250"), 2),
    ("max_tool_temp: 200\n", ("8settemp", "150"), 0),
    ("max_factor: 120\n", ("8speed", "150"), 2),
    ("jog_direction: 8control\n", ("8jog", "0", "0", "1"), 0),
    ("url: http://127.0.0.1:{closed}\n", ("8status",), 1),
    ("url: http://127.0.0.1:{closed}\n", ("8msg", "hello"), 1),
]


@pytest.mark.parametrize("text, argv, code", CASES, ids=[f"{t.strip()} {' '.join(a)}" for t, a, _c in CASES])
def test_a_personal_config_gives_the_same_outcome_with_and_without_a_daemon(
    text, argv, code, printer, daemon, tmp_path
):
    home = tmp_path / "home"
    url_line = "" if text.startswith("url:") else f"url: {printer.url}\n"
    personal(home, url_line + text.format(closed=closed_port()))
    fast, local = both_ways(argv, printer, daemon, home, {"OCTOPRINT_API_KEY": printer.api_key})
    assert fast == local
    assert fast[0] == code, fast


def test_another_url_in_the_environment_is_honoured_too(printer, daemon, tmp_path):
    env = {"OCTOPRINT_API_KEY": printer.api_key, "OCTOPRINT_URL": f"http://127.0.0.1:{closed_port()}"}
    fast, local = both_ways(("8home",), printer, daemon, tmp_path, env)
    assert fast == local and fast[0] == 1 and fast[3] == [], fast


@pytest.mark.parametrize("how", ["the daemon's own file", "a copy of it"])
def test_the_daemons_own_settings_go_through_the_daemon(how, printer, daemon, tmp_path):
    """Without a key of its own the caller could not run it in-process: exit 0 proves the daemon ran it."""
    proc, conf = daemon
    home = tmp_path / "home"
    env = {"OCTOPANEL_SOCKET": str(proc.control)}
    if how == "a copy of it":
        personal(home, conf.read_text())
    else:
        home.mkdir()
        env["OCTOPANEL_CONFIG"] = str(conf)
    mark = printer.mark()
    done = run(("8msg", f"from {how}"), home, env)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"M117 from {how} sent\n", "")
    assert sent_by(printer, mark) == [f"M117 from {how}"]
    local = run(("8msg", f"from {how}"), home, {**env, "OCTOPANEL_NO_DAEMON": "1"})
    assert local.returncode == 2 and "no OctoPrint api key" in local.stderr, local.stderr


def test_a_daemon_config_edited_after_it_started_no_longer_serves_its_callers(printer, tmp_path):
    """The daemon keeps the limits it loaded; a caller reading the edited file gets the new ones, in-process."""
    conf = tmp_path / "daemon.yaml"
    conf.write_text(f"url: {printer.url}\n")
    daemon = DaemonProc(tmp_path, args=("--config", str(conf)), printer=printer, env={"OCTOPRINT_URL": None})
    try:
        conf.write_text(f"url: {printer.url}\nmax_tool_temp: 200\n")
        env = {
            "OCTOPANEL_SOCKET": str(daemon.control),
            "OCTOPANEL_CONFIG": str(conf),
            "OCTOPRINT_API_KEY": printer.api_key,
        }
        mark = printer.mark()
        done = run(("8settemp", "250"), tmp_path, env)
        assert done.returncode == 2 and "200" in done.stderr, done
        assert sent_by(printer, mark) == []
    finally:
        daemon.kill()


class OlderDaemon:
    """A control socket that answers every line as a daemon without same_config does (a malformed request)."""

    def __init__(self, path):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.lines = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn, conn.makefile("rb") as lines:
            for line in lines:  # until the client closes
                self.lines.append(json.loads(line))
                conn.sendall(b'{"ok": false, "error": "malformed request: \'argv\'", "exit": 2}\n')


def test_an_older_daemon_gets_the_question_but_never_the_command(printer, tmp_path):
    older = OlderDaemon(tmp_path / "old.sock")
    env = {
        "OCTOPANEL_SOCKET": str(tmp_path / "old.sock"),
        "OCTOPRINT_URL": printer.url,
        "OCTOPRINT_API_KEY": printer.api_key,
    }
    mark = printer.mark()
    done = run(("8msg", "in-process once"), tmp_path, env)
    older.thread.join(10)
    older.server.close()
    assert (done.returncode, done.stdout) == (0, "M117 in-process once sent\n"), done.stderr
    assert sent_by(printer, mark) == ["M117 in-process once"]
    assert [list(line) for line in older.lines] == [["same_config"]]  # no {"argv": ...} ever reached it
