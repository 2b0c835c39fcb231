"""Names given on the command line become URL path segments safely: quoted one by one, traversal refused (issue 10 §2).

Routing is checked against the stub (it records the exact path sent); the traversals that used to reach other
endpoints are replayed against the real OctoPrint, showing that nothing was requested and nothing happened.
"""

import pytest
from cmdcheck import failed, job, ok, requests_made
from stubserver import Reply, StubServer, idle_octoprint_routes
from test_stub_faults import KEY, assert_clean_failure, run_cli

from octopanel.errors import UsageError
from octopanel.printers.octoprint.client import Client

HOSTILE_FILES = [
    "../../system/commands/custom/streamon",
    "../../../api/users",
    "/etc/passwd",
    "a/../../b.gcode",
    "%2e%2e/%2e%2e/system",
    "a/%2E%2e/b",
    "..%2f..%2fapi%2fusers",
    "a\\..\\b",
    "a//b.gcode",
    "a/./b.gcode",
    "folder/",
    "",
    ".",
    "..",
]
HOSTILE_COMMANDS = ["../core/shutdown", "core/shutdown", "..", ".", "%2e%2e", "a%2fb", "a\\b", ""]


@pytest.fixture
def stub():
    routes = idle_octoprint_routes()
    routes[("GET", "/api/job")] = Reply(200, {"state": "Operational", "job": {"file": {"name": None}}})
    with StubServer(routes) as server:
        yield server


def cli(stub, tmp_path, *args):
    return run_cli(tmp_path, *args, "--url", stub.url, "--api-key", KEY)


@pytest.mark.parametrize("command", ["8fselect", "8ll"])
@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_traversing_file_names_are_refused_before_anything_is_sent(stub, tmp_path, command, name):
    proc = cli(stub, tmp_path, command, name)
    assert_clean_failure(proc, 2, "nothing sent")
    assert stub.requests == []


@pytest.mark.parametrize("name", HOSTILE_COMMANDS)
def test_system_command_names_are_one_segment(stub, tmp_path, name):
    proc = cli(stub, tmp_path, "8run", name)
    assert_clean_failure(proc, 2, "nothing sent")
    assert stub.requests == []


@pytest.mark.parametrize("name", ["../x.gcode", "/tmp/x.gcode", "a//x.gcode", "%2e%2e/x.gcode"])
def test_upload_target_names_are_checked_too(stub, tmp_path, name):
    source = tmp_path / "x.gcode"
    source.write_text("G28\n")
    proc = cli(stub, tmp_path, "8upload", source, name)
    assert_clean_failure(proc, 2, "nothing sent")
    assert stub.requests == []


@pytest.mark.parametrize(
    "command, method, name, path",
    [
        ("8fselect", "POST", "sub dir/a?b#c%d.gcode", "/api/files/local/sub%20dir/a%3Fb%23c%25d.gcode"),
        ("8ll", "GET", "folder/part.gcode", "/api/files/local/folder/part.gcode"),
        ("8ll", "GET", "what?recursive=true", "/api/files/local/what%3Frecursive%3Dtrue"),
        ("8run", "POST", "stream on?#", "/api/system/commands/custom/stream%20on%3F%23"),
    ],
)
def test_each_segment_is_quoted_separately(stub, tmp_path, command, method, name, path):
    stub.route(method, path.split("?")[0], Reply(200, {"name": "x"}) if method == "GET" else Reply(204))
    ok(cli(stub, tmp_path, command, name))
    sent = [r.path for r in stub.requests if r.path.startswith(("/api/files/local/", "/api/system/commands/"))]
    assert sent == [path]


def test_the_client_itself_refuses_a_traversal(stub):
    client = Client(stub.url, KEY)
    for call in (
        lambda: client.select_file("../../system/commands/custom/reset"),
        lambda: client.file_info("a/../b"),
        lambda: client.system_command("../core/shutdown"),
        lambda: client.system_command("reset", source=".."),
    ):
        with pytest.raises(UsageError, match="nothing sent"):
            call()
    assert stub.requests == []
    client.close()


# -- the same traversals against the real OctoPrint ------------------------------------------------------------


def custom_commands_run(printer, mark):
    """Lines OctoPrint logged since byte `mark` of octoprint.log about running a custom system command."""
    with open(printer.server_log, "rb") as handle:
        handle.seek(mark)
        text = handle.read().decode(errors="replace")
    return [line for line in text.splitlines() if "custom:reset" in line or "system command" in line.lower()]


def log_size(printer):
    with open(printer.server_log, "rb") as handle:
        return handle.seek(0, 2)


def test_fselect_cannot_run_a_system_command_on_octoprint(run8, printer):
    serial, server = printer.mark(), log_size(printer)
    proc = failed(run8("8fselect", "-v", "../../system/commands/custom/reset"), 2, "nothing sent")
    assert requests_made(proc.stderr) == []
    assert custom_commands_run(printer, server) == []
    assert job(printer)["job"]["file"]["name"] is None
    assert printer.settle(serial) == []


def test_run_cannot_reach_core_commands_on_octoprint(run8, printer):
    proc = failed(run8("8run", "-v", "../core/shutdown"), 2, "nothing sent")
    assert requests_made(proc.stderr) == []
    assert printer.request("GET", "/api/version").status_code == 200


def test_ll_cannot_read_the_user_list_on_octoprint(run8, printer):
    proc = failed(run8("8ll", "-v", "../../../api/users"), 2, "nothing sent")
    assert requests_made(proc.stderr) == []
    assert "admin" not in proc.stdout


def test_a_legitimate_name_with_odd_characters_still_works_on_octoprint(run8, printer, tmp_path):
    source = tmp_path / "odd name #1.gcode"
    source.write_text("G90\n")
    ok(run8("8upload", source))
    ok(run8("8fselect", "odd name #1.gcode"))
    assert job(printer)["job"]["file"]["name"] == "odd name #1.gcode"
    info = ok(run8("8ll", "odd name #1.gcode"))
    assert '"name": "odd name #1.gcode"' in info.stdout
