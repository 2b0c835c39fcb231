"""End to end: configuration, status, connection and system commands, global flags, errors (installed 8xxx scripts)."""

import json

import pytest
from cmdcheck import failed, ok, requests_made, sent_by

# -- configuration and status ----------------------------------------------------------------------------


def test_checkcfg_needs_no_server_and_masks_the_key(run8, printer):
    proc = ok(run8("8checkcfg", "--url", "http://127.0.0.1:9"))  # nothing listens on port 9
    assert "Printer URL:   http://127.0.0.1:9  [from command line]" in proc.stdout
    assert printer.api_key not in proc.stdout + proc.stderr
    assert f"API key:       {printer.api_key[:2]}…{printer.api_key[-2:]}  [from environment]" in proc.stdout
    assert "Jog direction: profile  [from default]" in proc.stdout
    assert "max_tool_temp=285.0" in proc.stdout


def test_apiver(run8):
    proc = ok(run8("8apiver"))
    assert proc.stdout == "API 0.1, OctoPrint 1.11.8\n"
    data = json.loads(ok(run8("8apiver", "--json")).stdout)
    assert data["server"] == "1.11.8" and data["api"] == "0.1"


@pytest.mark.parametrize("command", ["8status_raw", "8statusraw"])
def test_status_raw(run8, printer, command):
    data = json.loads(ok(run8(command)).stdout)
    assert data["current"]["state"] == "Operational"
    assert data["current"]["port"] == "VIRTUAL"
    assert data == json.loads(ok(run8(command, "--json")).stdout)


def test_status(run8, printer):
    host = printer.url.split("://", 1)[1]
    assert ok(run8("8status")).stdout == f"Machine: {host}\nOperational\n"
    assert ok(run8("8status", "-q")).stdout == "Operational\n"
    data = json.loads(ok(run8("8status", "--json")).stdout)
    assert data["current"]["state"] == "Operational"


def test_status_while_printing_and_paused(run8, printer):
    printer.print_file()
    assert ok(run8("8status", "-q")).stdout.strip() in ("Printing", "Starting")
    printer.request("POST", "/api/job", json={"command": "pause", "action": "pause"})
    printer.wait_state("paused")
    assert ok(run8("8status", "-q")).stdout == "Paused\n"


def test_getjob(run8, printer):
    printer.print_file(name="getjob-probe.gcode")
    data = json.loads(ok(run8("8getjob", "--json")).stdout)
    assert data["job"]["file"]["name"] == "getjob-probe.gcode"
    assert data["state"] in ("Printing", "Starting")
    text = ok(run8("8getjob")).stdout
    assert json.loads(text)["job"]["file"]["name"] == "getjob-probe.gcode"


# -- connection ---------------------------------------------------------------------------------------------


def connection_state(printer):
    return printer.request("GET", "/api/connection").json()["current"]["state"]


def test_disconnect_then_connect(run8, printer):
    assert ok(run8("8disconnect")).stdout == "disconnect sent\n"
    printer.wait_state(set(), absent={"operational"})
    assert connection_state(printer) == "Closed"
    assert ok(run8("8status", "-q")).stdout == "Closed\n"

    mark = printer.mark()
    assert ok(run8("8connect")).stdout == "connect sent\n"
    printer.wait_state({"operational", "ready"}, timeout=20)
    assert "M115" in printer.wait_sent(mark, ["M115"])  # the firmware handshake ran again


def test_commands_while_disconnected_fail_cleanly(run8, printer):
    printer.disconnect()
    failed(run8("8jog", "1"), 1, "jog refused: the printer is disconnected", "nothing sent")
    failed(run8("8home"), 1, "home refused: the printer is disconnected", "nothing sent")  # OctoPrint's 409, explained
    failed(run8("8msg", "hi"), 1, "8msg: the printer refused:")
    failed(run8("8gettemp"), 1, "8gettemp: the printer refused:")
    assert ok(run8("8pause")).stdout == "not printing (printer is disconnected): nothing sent\n"


def test_reconnect(run8, printer):
    mark = printer.mark()
    proc = ok(run8("8reconnect", "-v"))
    assert proc.stdout == "reconnected\n"
    made = requests_made(proc.stderr)
    assert [m.split()[0] + " " + m.split()[1].split("/", 3)[3] for m in made] == [
        "POST api/connection",
        "POST api/system/commands/custom/reset",
        "POST api/connection",
    ]
    assert '{"command": "disconnect"}' in made[0] and '{"command": "connect"}' in made[2]
    printer.wait_state({"operational", "ready"}, timeout=20)
    printer.wait_sent(mark, ["M115"])


# -- system commands and power ------------------------------------------------------------------------------


def test_listcmds(run8):
    proc = ok(run8("8ListCmds"))
    assert "custom/reset: Reset" in proc.stdout.splitlines()
    assert "custom/fail: Fail" in proc.stdout.splitlines()
    data = json.loads(ok(run8("8ListCmds", "--json")).stdout)
    assert {c["action"] for c in data["custom"]} == {"reset", "fail"}


def test_run_custom_command(run8, printer):
    proc = ok(run8("8run", "reset", "-v"))
    assert proc.stdout == "system command 'reset' run\n"
    assert f"> POST {printer.url}/api/system/commands/custom/reset" in proc.stderr
    assert "< 204" in proc.stderr


def test_run_failing_and_unknown_custom_commands(run8):
    failed(run8("8run", "fail"), 1, "OctoPrint failed on POST /api/system/commands/custom/fail (HTTP 500)")
    failed(run8("8run", "nosuch"), 1, "not found: POST /api/system/commands/custom/nosuch")


def test_reset(run8, printer):
    mark = printer.mark()
    proc = ok(run8("8reset", "-v"))
    assert f"> POST {printer.url}/api/system/commands/custom/reset" in proc.stderr
    assert sent_by(printer, mark) == []  # a system command, no G-code


def test_on_runs_reset_then_m80(run8, printer):
    mark = printer.mark()
    proc = ok(run8("8on", "-v"))
    assert proc.stdout == "reset run, M80 sent\n"
    made = requests_made(proc.stderr)
    assert made[0].startswith(f"POST {printer.url}/api/system/commands/custom/reset")
    assert made[1] == f'POST {printer.url}/api/printer/command {{"commands": ["M80"]}}'
    assert sent_by(printer, mark) == ["M80"]


def test_off_sends_m81(run8, printer):
    mark = printer.mark()
    assert ok(run8("8off")).stdout == "M81 sent\n"
    assert sent_by(printer, mark) == ["M81"]


# -- global flags: -v, -vv, --json ---------------------------------------------------------------------------


def test_v_prints_requests_without_the_key(run8, printer):
    proc = ok(run8("8msg", "verbose", "-v"))
    assert printer.api_key not in proc.stdout + proc.stderr
    assert f'> POST {printer.url}/api/printer/command {{"commands": ["M117 verbose"]}}' in proc.stderr
    assert "< 204 NO CONTENT" in proc.stderr
    assert ">> " not in proc.stderr  # headers only with -vv


def test_vv_prints_headers_with_the_key_redacted(run8, printer):
    proc = ok(run8("8status", "-vv"))
    assert printer.api_key not in proc.stdout + proc.stderr
    assert ">> X-Api-Key: ***" in proc.stderr
    assert f"> GET {printer.url}/api/connection" in proc.stderr
    assert "<< Content-Type: application/json" in proc.stderr


def test_vv_with_the_key_on_the_command_line(run8, printer):
    proc = ok(run8("8apiver", "-vv", "--api-key", printer.api_key, env={"OCTOPRINT_API_KEY": None}))
    assert printer.api_key not in proc.stdout + proc.stderr
    assert ">> X-Api-Key: ***" in proc.stderr


def test_v_on_an_error_still_hides_the_key(run8, printer):
    proc = failed(run8("8run", "nosuch", "-vv"), 1, "not found")
    assert printer.api_key not in proc.stdout + proc.stderr
    assert ">> X-Api-Key: ***" in proc.stderr


@pytest.mark.parametrize(
    "command, key",
    [
        ("8status", "current"),
        ("8status_raw", "current"),
        ("8getjob", "job"),
        ("8gettemp", "tool0"),
        ("8gettemp_raw", "tool0"),
        ("8getbed", "bed"),
        ("8getbed_raw", "bed"),
        ("8ls", "files"),
        ("8ls_raw", "files"),
        ("8apiver", "server"),
        ("8ListCmds", "custom"),
        ("8checkcfg", "sources"),
    ],
)
def test_json_for_data_commands(run8, command, key):
    data = json.loads(ok(run8(command, "--json")).stdout)
    assert key in data


def test_json_for_a_command_action(run8, printer):
    mark = printer.mark()
    data = json.loads(ok(run8("8fan", "on", "--json")).stdout)
    assert data == {"action": "fan", "sent": True, "message": "M106 S255 sent"}
    assert sent_by(printer, mark) == ["M106 S255"]


def test_octopanel_front_end_with_options_before_the_action(runop, printer):
    mark = printer.mark()
    ok(runop("-v", "--url", printer.url, "msg", "via octopanel"))
    assert sent_by(printer, mark) == ["M117 via octopanel"]


# -- errors -----------------------------------------------------------------------------------------------


def test_unknown_action_suggests_and_sends_nothing(runop, printer):
    mark = printer.mark()
    proc = failed(runop("-v", "jgo", "1"), 2, "octopanel: unknown action 'jgo' (did you mean 'jog'?)")
    assert requests_made(proc.stderr) == []
    assert sent_by(printer, mark) == []


def test_wrong_key_is_reported_as_rejected_on_get_and_post(run8, printer):
    env = {"OCTOPRINT_API_KEY": "definitely-not-the-key"}
    failed(run8("8status", env=env), 1, "8status: OctoPrint rejected the API key (check it with 8checkcfg)")
    mark = printer.mark()
    failed(run8("8msg", "nope", env=env), 1, "8msg: OctoPrint rejected the API key")  # a 400 CSRF on POST
    assert sent_by(printer, mark) == []


def test_unreachable_server_exits_1(run8):
    proc = failed(
        run8("8status", "--url", "http://127.0.0.1:9"), 1, "cannot reach OctoPrint or Moonraker at http://127.0.0.1:9/"
    )
    assert "connection refused" in proc.stderr


def test_usage_errors_exit_2_without_traceback(run8, printer):
    mark = printer.mark()
    cases = (
        (["8jog", "1", "2"], "cannot read arguments '1 2'"),
        (["8servo"], "missing num"),
        (["8jog", "--speed"], "unknown option '--speed'"),
        (["8status", "--url"], "--url needs a value"),
    )
    for args, text in cases:
        proc = failed(run8(args[0], "-v", *args[1:]), 2, text)
        assert requests_made(proc.stderr) == []
    assert sent_by(printer, mark) == []


# -- credentials inside the URL (issue 10, item 3) ---------------------------------------------------


def _with_credentials(url):
    return url.replace("://", "://alice:hunter2pw@", 1)


@pytest.mark.parametrize("command", ["8status", "8checkcfg", "8apiver"])
def test_url_credentials_never_appear_in_output(run8, printer, command):
    """user:password in the URL is masked in 8status's Machine:, 8checkcfg, -vv (Authorization too)."""
    proc = run8(command, "-vv", "--url", _with_credentials(printer.url))
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "hunter2pw" not in output and "alice" not in output, output
    if command == "8status":
        assert f"Machine: {printer.url.split('://', 1)[1]}" in proc.stdout
    assert "Authorization: Basic" not in output  # requests sends the URL's credentials as basic auth


def test_url_credentials_are_masked_in_error_messages(run8):
    proc = run8("8status", "--url", "http://alice:hunter2pw@127.0.0.1:9/")
    assert proc.returncode == 1, proc.stderr
    assert "hunter2pw" not in proc.stderr and "alice" not in proc.stderr
    assert "http://***@127.0.0.1:9/" in proc.stderr


def test_a_short_key_is_masked_only_as_a_whole_word():
    from octopanel.printers.octoprint.client import Client

    short = Client("http://127.0.0.1:9/", "x")
    assert short.redact("exception: key x rejected") == "exception: key *** rejected"
    long_key = "ABCDEF0123456789"
    assert Client("http://h/", long_key).redact(f"echo{long_key}") == "echo***"  # a long key, anywhere
