"""Bad input is a clear exit 2 with nothing sent, never "internal error"; text from OctoPrint is shown escaped.

Covered: keys and URLs with CR/LF or characters a header cannot carry, 8control's file nested too deeply,
key files that are devices, FIFOs or far too large, and control characters in names, states and errors.
"""

import json
import os
import resource
import subprocess
from urllib.parse import quote

import pytest
import requests
from cmdcheck import failed, ok, sent_by
from conftest import BIN, LEAKY_PREFIXES
from daemonproc import DaemonProc
from stubserver import Reply, StubServer, idle_octoprint_routes

MEMORY_CAP = 1 << 30  # an unbounded read of /dev/zero fails fast instead of swapping the machine


def capped():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(home, argv, env, timeout=20):
    full = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    full.update(HOME=str(home), OCTOPANEL_NO_DAEMON="1", **env)
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], env=full, capture_output=True, text=True, timeout=timeout, preexec_fn=capped
    )


def personal(home, text):
    path = home / ".config" / "octopanel" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "key, problem",
    [
        ("{key}\r\nX-Injected: 1", "api_key holds a control character"),
        ("{key}\n", "api_key holds a control character"),  # requests would fail on it mid-request
        ("{key}€", "api_key holds a character an HTTP header cannot carry"),
    ],
    ids=["CR LF", "trailing LF", "euro sign"],
)
def test_a_key_in_the_environment_that_no_header_can_carry(key, problem, printer, tmp_path):
    mark = printer.mark()
    done = run(
        tmp_path,
        ("8msg", "key test"),
        {"OCTOPRINT_URL": printer.url, "OCTOPRINT_API_KEY": key.format(key=printer.api_key)},
    )
    failed(done, 2, f"environment: {problem}", "nothing was sent")
    assert sent_by(printer, mark) == []


@pytest.mark.parametrize("how", ["key file", "yaml url"])
def test_a_line_break_inside_a_file_value_names_the_file(how, printer, tmp_path):
    if how == "key file":
        key_file = tmp_path / "api-key"
        key_file.write_text(printer.api_key[:10] + "\n" + printer.api_key[10:] + "\n")
        key_file.chmod(0o600)
        personal(tmp_path, f"url: {printer.url}\napi_key_file: {key_file}\n")
        where, env = str(key_file), {}
    else:
        where = str(personal(tmp_path, f'url: "{printer.url}/\\r\\nX-Injected: 1"\n'))
        env = {"OCTOPRINT_API_KEY": printer.api_key}
    mark = printer.mark()
    done = run(tmp_path, ("8msg", "never"), env)
    failed(done, 2, f"{where}: ", "holds a control character", "nothing was sent")
    assert sent_by(printer, mark) == []


def test_8controls_file_nested_too_deeply_is_a_config_error(printer, tmp_path):
    (tmp_path / ".octocmd.conf").write_text("[" * 100_000 + "]" * 100_000)
    done = run(tmp_path, ("8status",), {})
    failed(done, 2, f"{tmp_path / '.octocmd.conf'}: not valid JSON: nested too deeply")


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory", "5 MB file"])
def test_a_key_file_that_is_not_a_small_regular_file_is_refused_at_once(kind, printer, tmp_path):
    if kind == "/dev/zero":
        key_file = "/dev/zero"
    else:
        key_file = tmp_path / "api-key"
        if kind == "fifo":
            os.mkfifo(key_file, 0o600)  # nobody ever writes: a blocking open would wait for ever
        elif kind == "directory":
            key_file.mkdir()
        else:
            key_file.write_bytes(b"k" * 5_000_000)
            key_file.chmod(0o600)
    personal(tmp_path, f"url: {printer.url}\napi_key_file: {key_file}\n")
    mark = printer.mark()
    done = run(tmp_path, ("8msg", "never"), {})
    expected = "larger than 4096 bytes" if kind == "5 MB file" else "not a regular file"
    failed(done, 2, f"{key_file}: cannot read the API key: {expected}")
    assert sent_by(printer, mark) == []


def test_a_config_file_given_as_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    done = run(tmp_path, ("8status", "--config", str(fifo)), {})
    failed(done, 2, f"{fifo}: cannot read the config file: not a regular file")


def test_api_key_help_points_to_the_alternatives(runop, run8):
    for done in (runop("run", "-h"), run8("status", "-h"), runop("-h")):
        text = " ".join(ok(done).stdout.split())  # argparse wraps lines
        for alternative in ("ps", "api_key_file:", "OCTOPRINT_API_KEY", "octoprint-api-key", "LoadCredential="):
            assert alternative in text, (alternative, done.stdout)


def test_api_key_on_the_command_line_warns_once(run8, runop, printer, tmp_path):
    done = ok(run8("msg", "--api-key", printer.api_key, "flag key", env={"OCTOPRINT_API_KEY": None}))
    assert done.stderr.count("visible to every user through ps") == 1, done.stderr
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    # The = form: OctoPrint's keys may start with '-', which argparse would take for an option.
    daemon = runop("run", f"--api-key={printer.api_key}", "--dry-run", "--replay", str(empty))
    assert daemon.returncode == 0 and daemon.stderr.count("visible to every user through ps") == 1, daemon.stderr
    quiet = ok(run8("msg", "env key"))
    assert "visible to every user" not in quiet.stderr


ESC_NAME = "csi\x9b31m.gcode"  # OctoPrint refuses C0 characters in names (400), but stores C1 ones
SHOWN = "csi\\x9b31m.gcode"


def test_a_file_name_from_octoprint_is_shown_escaped_in_process_and_through_the_daemon(printer, tmp_path):
    local = tmp_path / ESC_NAME
    local.write_text("G28\n")
    env = {"OCTOPRINT_URL": printer.url, "OCTOPRINT_API_KEY": printer.api_key}
    try:
        up = ok(run(tmp_path, ("8upload", str(local)), env))
        assert up.stdout == f"uploaded {SHOWN} (4 bytes)\n"
        listed = ok(run(tmp_path, ("8ls",), env))
        assert SHOWN in listed.stdout.splitlines() and "\x9b" not in listed.stdout
        as_json = json.loads(ok(run(tmp_path, ("8ls", "--json"), env)).stdout)  # JSON escapes it itself
        assert ESC_NAME in [f["name"] for f in as_json["files"]]
        (tmp_path / "d").mkdir()
        daemon = DaemonProc(tmp_path / "d", printer=printer)
        try:
            full = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
            full.update(HOME=str(tmp_path), OCTOPANEL_SOCKET=str(daemon.control), OCTOPRINT_URL=printer.url)
            fast = subprocess.run([str(BIN / "8ls")], env=full, capture_output=True, text=True, timeout=30)
            assert (fast.returncode, fast.stdout) == (0, listed.stdout), fast.stderr
            daemon.wait_log('socket: {"argv": ["ls"]}', timeout=10)  # it went through the daemon (logged after)
        finally:
            daemon.kill()
    finally:  # octopanel has no delete command; leave the session's OctoPrint as it was
        requests.delete(
            f"{printer.url}/api/files/local/{quote(ESC_NAME)}", headers={"X-Api-Key": printer.api_key}, timeout=10
        )


def test_escapes_in_a_state_and_in_an_error_from_the_server_are_shown_escaped(tmp_path):
    routes = idle_octoprint_routes()
    routes[("GET", "/api/connection")] = Reply(200, {"current": {"state": "Operational\x1b]0;owned\x07"}})
    routes[("POST", "/api/printer/command")] = Reply(409, {"error": "Printer is not operational\x1b[2J\r"})
    with StubServer(routes) as stub:
        env = {"OCTOPRINT_URL": stub.url, "OCTOPRINT_API_KEY": "stub-key-0123456789"}
        status = ok(run(tmp_path, ("8status", "-q"), env))
        assert status.stdout == "Operational\\x1b]0;owned\\x07\n"
        refused = run(tmp_path, ("8msg", "hi"), env)
    assert refused.returncode == 1 and "\x1b" not in refused.stderr and "\r" not in refused.stderr
    assert "Printer is not operational\\x1b[2J\\x0d" in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://127.0.0.1:9/\r\nX-Injected: 1", "url holds a control character"),
        ("ftp://127.0.0.1:9/", "url must start with http:// or https://"),
    ],
    ids=["CR LF", "ftp"],
)
def test_login_checks_its_url_before_using_or_saving_it(url, problem, tmp_path):
    done = run(tmp_path, ("octopanel", "login", url, "--timeout", "1"), {})
    failed(done, 2, f"the URL argument: {problem}")
    assert not (tmp_path / ".config").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://" + "a" * 70 + ".local", "its host name is not a valid DNS name"),
        ("http://octopi..local", "its host name is not a valid DNS name"),
        ("http://\u2488.local", "its host name is not a valid DNS name"),
        ("http://pi:secret-pw@octopi.local:99999", "its port is not a number from 1 to 65535"),
        ("http://:5000", "it names no host"),
    ],
    ids=["long label", "empty label", "IDNA", "port", "no host"],
)
def test_a_url_no_request_could_use_is_a_config_error_at_load(url, problem, tmp_path):
    """Exit 2 and the reason, before any request (it was 'cannot reach ...: the URL is not valid', exit 1, as if
    the printer were down); the URL's password is not repeated."""
    for argv in (("8status",), ("octopanel", "run", "--dry-run")):
        done = run(tmp_path, argv, {"OCTOPRINT_URL": url, "OCTOPRINT_API_KEY": "k" * 32})
        failed(done, 2, f" is not usable: {problem}", "nothing was sent")
        assert "secret-pw" not in done.stderr and "cannot reach" not in done.stderr
