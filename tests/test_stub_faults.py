"""Faults a real OctoPrint cannot produce on demand, against an HTTP stub on port 0 (real sockets, real requests)."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from stubserver import Reply, StubServer, idle_octoprint_routes

from octopanel.errors import BadRequest, Busy, KeyRejected, NotFound, PrinterError, ServerError, Unreachable
from octopanel.printers.octoprint.client import Client

BIN = Path(sys.executable).parent
KEY = "stub-key-0123456789abcdef"


@pytest.fixture
def stub():
    with StubServer(idle_octoprint_routes()) as server:
        yield server


def closed_port():
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PROXY_VARS = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "NETRC",
)


def run_cli(tmp_path, command, *args, config=None, env=None):
    """Run an installed 8xxx script against the stub, with a clean HOME and no leaking settings (env: extra)."""
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OCTOPRINT_", "OCTOPANEL_", "XDG_CONFIG_")) and k not in PROXY_VARS
        },
        **(env or {}),
    }
    env["HOME"] = str(tmp_path)
    # The stub plays OctoPrint: with the default backend (auto) each command would first ask it whether it is
    # Moonraker (GET /server/info), a request these tests do not count.
    env.setdefault("OCTOPANEL_BACKEND", "octoprint")
    if config is not None:
        path = tmp_path / "config.yaml"
        path.write_text(config)
        path.chmod(0o600)
        env["OCTOPANEL_CONFIG"] = str(path)
    return subprocess.run([str(BIN / command), *map(str, args)], env=env, capture_output=True, text=True, timeout=60)


def assert_clean_failure(proc, code, *texts):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for text in texts:
        assert text in proc.stderr, proc.stderr


# -- timeouts and unreachable servers ------------------------------------------------------------------


def test_read_timeout_raises_unreachable_within_bounded_time(stub):
    stub.route("GET", "/api/version", Reply(200, {"api": "0.1"}, delay_s=5))
    client = Client(stub.url, KEY, connect_timeout=1, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(Unreachable, match="did not answer in time"):
        client.version()
    assert time.monotonic() - started < 2.0
    client.close()


def test_read_timeout_through_the_cli(stub, tmp_path):
    stub.route("GET", "/api/version", Reply(200, {"api": "0.1"}, delay_s=5))
    started = time.monotonic()
    proc = run_cli(tmp_path, "8apiver", config=f"url: {stub.url}\napi_key: {KEY}\nread_timeout: 0.3\n")
    assert time.monotonic() - started < 4.0
    assert_clean_failure(proc, 1, "did not answer in time")
    assert KEY not in proc.stderr


def test_slow_answer_within_the_timeout_succeeds(stub):
    stub.route("GET", "/api/version", Reply(200, {"api": "0.1", "server": "1.11.8"}, delay_s=0.4))
    client = Client(stub.url, KEY, read_timeout=3)
    assert client.version() == {"api": "0.1", "server": "1.11.8"}
    client.close()


def test_connection_refused_exits_1_with_a_clear_message(tmp_path):
    port = closed_port()
    started = time.monotonic()
    proc = run_cli(tmp_path, "8status", "--url", f"http://127.0.0.1:{port}", "--api-key", KEY)
    assert time.monotonic() - started < 10
    assert_clean_failure(proc, 1, f"cannot reach OctoPrint at http://127.0.0.1:{port}/", "connection refused")
    assert KEY not in proc.stderr


def test_connection_refused_in_the_client():
    client = Client(f"http://127.0.0.1:{closed_port()}", KEY, connect_timeout=1)
    with pytest.raises(Unreachable, match="connection refused"):
        client.connection()


# -- status codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, error, match",
    [
        (Reply(500, "Internal Server Error"), ServerError, r"OctoPrint failed on GET /api/version \(HTTP 500\)"),
        (Reply(503, {"error": "starting up"}), ServerError, "HTTP 503.*starting up"),
        (Reply(200, "this is { not json"), ServerError, "not JSON for GET /api/version"),
        (Reply(409, {"error": "Printer is not operational"}), Busy, "the printer refused: Printer is not operational"),
        (Reply(403, {"error": "You don't have the permission"}), KeyRejected, "rejected the API key"),
        (
            Reply(400, "<html><body><h1>400</h1><p>CSRF validation failed</p></body></html>"),
            KeyRejected,
            "rejected the API key",
        ),
        (Reply(400, {"error": "Unknown command"}), BadRequest, "did not accept GET /api/version: Unknown command"),
        (
            Reply(404, "<html><p>The requested URL was not found on the server.</p></html>"),
            NotFound,
            "not found: GET /api/version .The requested URL was not found",
        ),
        (Reply(418, "teapot"), PrinterError, "HTTP 418"),
    ],
)
def test_status_codes_map_to_typed_errors(stub, reply, error, match):
    stub.route("GET", "/api/version", reply)
    client = Client(stub.url, KEY)
    with pytest.raises(error, match=match) as info:
        client.version()
    assert info.value.status == reply.status
    client.close()


def test_409_message_reaches_the_cli_user(stub, tmp_path):
    stub.route("POST", "/api/printer/printhead", Reply(409, {"error": "Printer is currently printing"}))
    proc = run_cli(tmp_path, "8home", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "the printer refused: Printer is currently printing")


@pytest.mark.parametrize("reply", [Reply(403, {"error": "Forbidden"}), Reply(400, "CSRF validation failed")])
def test_rejected_key_through_the_cli(stub, tmp_path, reply):
    stub.route("POST", "/api/printer/command", reply)
    proc = run_cli(tmp_path, "8msg", "hi", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "OctoPrint rejected the API key (check it with 8checkcfg)")


def test_server_error_and_bad_json_through_the_cli(stub, tmp_path):
    stub.route("GET", "/api/connection", Reply(500, "boom"))
    proc = run_cli(tmp_path, "8status", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "OctoPrint failed on GET /api/connection (HTTP 500): boom")
    stub.route("GET", "/api/connection", Reply(200, "<html>proxy login</html>"))
    proc = run_cli(tmp_path, "8status", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "not JSON for GET /api/connection")


def test_unknown_system_command_404_through_the_cli(stub, tmp_path):
    proc = run_cli(tmp_path, "8run", "nosuch", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "not found: POST /api/system/commands/custom/nosuch")


# -- what the client sends -----------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["/octoprint/", "/octoprint"])
def test_url_with_a_path_prefix(base):
    with StubServer(idle_octoprint_routes("/octoprint")) as stub:
        client = Client(stub.url + base, KEY)
        assert client.version()["server"] == "1.11.8"
        client.feedrate(120)
        client.close()
        paths = [r.path for r in stub.requests]
        assert paths == ["/octoprint/api/version", "/octoprint/api/printer/printhead"]


def test_url_with_a_path_prefix_through_the_cli(tmp_path):
    with StubServer(idle_octoprint_routes("/octoprint")) as stub:
        proc = run_cli(tmp_path, "8jog", "1", "0", "0", "--url", stub.url + "/octoprint/", "--api-key", KEY)
        assert proc.returncode == 0, proc.stderr
        assert all(r.path.startswith("/octoprint/api/") for r in stub.requests), [r.path for r in stub.requests]
        assert stub.received("POST", "/octoprint/api/printer/printhead")[0].json() == {
            "command": "jog",
            "x": 1,
            "y": 0,
            "z": 0,
        }


def test_factors_are_sent_as_json_integers(stub, tmp_path):
    for command, path in (("8speed", "/api/printer/printhead"), ("8feed", "/api/printer/tool")):
        proc = run_cli(tmp_path, command, "150.0", "--url", stub.url, "--api-key", KEY)
        assert proc.returncode == 0, proc.stderr
        body = stub.received("POST", path)[-1].body
        assert json.loads(body)["factor"] == 150
        assert b'"factor": 150}' in body or b'"factor":150}' in body, body  # 150, never 150.0
    client = Client(stub.url, KEY)
    client.feedrate(99.6)
    client.close()
    assert json.loads(stub.received("POST", "/api/printer/printhead")[-1].body) == {
        "command": "feedrate",
        "factor": 100,
    }


def test_every_request_carries_the_key_header_and_json_content_type(stub):
    client = Client(stub.url, KEY)
    client.version()
    client.gcode(["M117 hi"])
    client.close()
    get, post = stub.requests
    assert get.headers["X-Api-Key"] == KEY and post.headers["X-Api-Key"] == KEY
    assert post.headers["Content-Type"] == "application/json"  # OctoPrint answers 415 otherwise
    assert post.json() == {"commands": ["M117 hi"]}


def test_whole_numbers_go_out_without_a_fraction(stub, tmp_path):
    """2.0 becomes 2 so that the G-code reads X2, not X2.0; a real fraction is kept."""
    proc = run_cli(tmp_path, "8jog", "x=2", "y=0.5", "--url", stub.url, "--api-key", KEY)
    assert proc.returncode == 0, proc.stderr
    assert stub.received("POST", "/api/printer/printhead")[-1].body in (
        b'{"command": "jog", "x": 2, "y": 0.5}',
        b'{"command":"jog","x":2,"y":0.5}',
    )


PRINTING = {"state": {"text": "Printing", "flags": {"operational": True, "printing": True}}}


def test_refused_action_sends_no_command(stub, tmp_path):
    """A busy printer: the state guard reads the flags and never POSTs."""
    stub.route("GET", "/api/printer", Reply(200, PRINTING))
    proc = run_cli(tmp_path, "8ex", "5", "--force", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "ex refused: the printer is printing")
    assert stub.received("POST") == []
    assert [r.method for r in stub.requests] == ["GET"]


def test_a_jog_octoprint_refuses_is_explained_from_the_state(stub, tmp_path):
    """jog goes out without a state read first; OctoPrint's 409 (server/api/printer.py) is then explained."""
    stub.route("GET", "/api/printer", Reply(200, PRINTING))
    stub.route(
        "POST", "/api/printer/printhead", Reply(409, {"error": "Printer is not operational or currently printing"})
    )
    proc = run_cli(tmp_path, "8jog", "5", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "jog refused: the printer is printing (jog needs it idle or paused); nothing sent")
    sent = [(r.method, urlsplit(r.path).path) for r in stub.requests]
    assert [s for s in sent if s[1] != "/api/printerprofiles"] == [
        ("POST", "/api/printer/printhead"),
        ("GET", "/api/printer"),
    ], sent


def test_a_jog_refused_for_another_reason_keeps_octoprints_words(stub, tmp_path):
    stub.route(
        "GET",
        "/api/printer",
        Reply(200, {"state": {"text": "Operational", "flags": {"operational": True, "ready": True}}}),
    )
    stub.route("POST", "/api/printer/printhead", Reply(409, {"error": "Printer is busy homing"}))
    proc = run_cli(tmp_path, "8jog", "5", "--url", stub.url, "--api-key", KEY)
    assert_clean_failure(proc, 1, "Printer is busy homing")
    assert "jog refused" not in proc.stderr


# The client reads proxies, NO_PROXY and ~/.netrc once (transport.environment_session), not on every request.
def test_a_proxy_from_the_environment_is_used(stub, tmp_path):
    proc = run_cli(
        tmp_path, "8apiver", "--url", "http://octoprint.invalid:5000", "--api-key", KEY, env={"http_proxy": stub.url}
    )
    assert proc.returncode == 0, proc.stderr
    assert [r.path for r in stub.requests] == ["http://octoprint.invalid:5000/api/version"]  # the proxy form


def test_no_proxy_is_honoured(stub, tmp_path):
    proc = run_cli(
        tmp_path,
        "8apiver",
        "--url",
        "http://octoprint.invalid:5000",
        "--api-key",
        KEY,
        env={"http_proxy": stub.url, "no_proxy": "octoprint.invalid"},
    )
    assert_clean_failure(proc, 1, "cannot reach OctoPrint at http://octoprint.invalid:5000/")
    assert stub.requests == []


def test_the_environment_is_read_once_per_client(stub, monkeypatch):
    """Not on every request (about 0.1 ms each with requests' trust_env): a proxy set afterwards is not seen."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    client = Client(stub.url, KEY)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("no_proxy", "")
    assert client.version()["api"] == "0.1"
    assert Client(stub.url, KEY).session.proxies == {"http": "http://127.0.0.1:9"}  # a new client sees it


def test_netrc_credentials_are_sent(stub, tmp_path):
    """A reverse proxy with basic auth in front of OctoPrint: ~/.netrc supplies it, as curl -n would."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login panel password s3cret\n")
    netrc.chmod(0o600)
    proc = run_cli(tmp_path, "8apiver", "--url", stub.url, "--api-key", KEY)
    assert proc.returncode == 0, proc.stderr
    assert stub.requests[0].headers["Authorization"] == "Basic " + base64.b64encode(b"panel:s3cret").decode()


def test_verbose_output_redacts_the_key_even_when_the_server_echoes_it(stub, tmp_path):
    stub.route("GET", "/api/version", Reply(200, {"api": "0.1"}, headers={"X-Echo": f"key={KEY}"}))
    proc = run_cli(tmp_path, "8apiver", "-vv", "--url", stub.url, "--api-key", KEY)
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stderr + proc.stdout
    assert "X-Api-Key: ***" in proc.stderr
    assert "<< X-Echo: key=***" in proc.stderr
    assert f"> GET {stub.url}/api/version" in proc.stderr


def test_reconnect_still_connects_when_the_reset_command_fails(stub, tmp_path):
    """8reconnect must not leave the printer disconnected because the custom 'reset' command failed."""
    stub.route("POST", "/api/connection", Reply(204))
    stub.route("POST", "/api/system/commands/custom/reset", Reply(500, {"error": "Command failed: exit 1"}))
    proc = run_cli(tmp_path, "8reconnect", "--url", stub.url, "--api-key", KEY)
    assert "Traceback" not in proc.stderr
    bodies = [r.json() for r in stub.received("POST", "/api/connection")]
    assert bodies == [{"command": "disconnect"}, {"command": "connect"}], bodies
    assert "reset" in proc.stderr + proc.stdout  # the failure is still reported


def test_reconnect_without_a_reset_command_skips_it(stub, tmp_path):
    stub.route("POST", "/api/connection", Reply(204))
    proc = run_cli(tmp_path, "8reconnect", "--url", stub.url, "--api-key", KEY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "reconnected (no custom system command 'reset' is defined: skipped it, connected anyway)\n"
    assert [r.json() for r in stub.received("POST", "/api/connection")] == [
        {"command": "disconnect"},
        {"command": "connect"},
    ]


def test_an_invalid_url_is_named_in_the_message(tmp_path):
    """A port out of range is a config error (exit 2) at load, not 'cannot reach' (exit 1)."""
    proc = run_cli(tmp_path, "8status", "--url", "http://127.0.0.1:99999", "--api-key", KEY)
    assert_clean_failure(proc, 2, "url http://127.0.0.1:99999 is not usable: its port is not a number")
