"""The fast CLI path (argv handed to a running daemon) prints and exits exactly like the in-process path."""

import json
import os
import subprocess
import sys
import time

import pytest
from cmdcheck import PRINT_MOVE, failed, sent_by, start_print
from conftest import BIN, LEAKY_PREFIXES
from hypothesis import given, settings
from hypothesis import strategies as st

from octopanel.daemon import protocol

CASES = [
    ("8status",),
    ("8status", "-q"),
    ("8status", "--json"),
    ("8apiver",),
    ("8getjob",),
    ("8gettemp", "--json"),
    ("8ls",),
    ("8msg", "same on both paths"),
    ("8beep", "50", "440"),
    ("8jog", "1", "0", "0"),
    ("octopanel", "jog", "z=1"),
    ("8home",),
    ("8speed", "100"),
    ("8fan", "off"),
    ("8pause",),
    ("8resume",),
    ("8pause", "--json"),
    ("8ex", "5"),
    ("8settemp", "400"),
    ("8fan", "256"),
    ("octopanel", "jgo"),
    ("8jog", "1", "2"),
    ("8g", "G28", "X0"),
    ("8gmulti", "M117 a", "M117 b"),
    ("8run", "nosuchaction"),
    ("8start",),
    ("8g0", "X1"),
    ("octopanel", "mode", "step"),
]


@pytest.fixture(scope="module")
def daemon(octoprint, tmp_path_factory):
    home = tmp_path_factory.mktemp("fastpath")
    keymap = home / "keymap.yaml"
    keymap.write_text("devices: []\nkeys:\n  KEY_KP5: msg hello\n")
    sock = home / "control.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES) and k != "NOTIFY_SOCKET"}
    env.update(HOME=str(home), OCTOPRINT_URL=octoprint.url, OCTOPRINT_API_KEY=octoprint.api_key)
    log = open(home / "daemon.log", "w+")
    proc = subprocess.Popen(
        [str(BIN / "octopanel"), "run", "--keymap", str(keymap), "--control", str(sock)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, (log.seek(0), log.read())
        time.sleep(0.02)
    yield sock, home, log
    proc.terminate()
    assert proc.wait(10) == 0
    log.close()


def run(argv, env, home):
    base = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    base.update(HOME=str(home), **env)
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], env=base, capture_output=True, text=True, timeout=60)


def both_paths(argv, daemon, printer, between=lambda: None):
    """Run argv through the daemon, then in-process; assert the same exit code and output; return the first."""
    sock, home, _log = daemon
    # The daemon's URL (so its settings are the caller's) but no key: in-process, anything but a usage error
    # would fail with "no OctoPrint api key".
    fast = run(argv, {"OCTOPANEL_SOCKET": str(sock), "OCTOPRINT_URL": printer.url}, home)
    between()
    local = run(
        argv, {"OCTOPRINT_URL": printer.url, "OCTOPRINT_API_KEY": printer.api_key, "OCTOPANEL_NO_DAEMON": "1"}, home
    )
    assert (fast.returncode, fast.stdout, fast.stderr) == (local.returncode, local.stdout, local.stderr)
    return fast


@pytest.mark.parametrize("argv", CASES, ids=" ".join)
def test_same_output_and_exit_code_through_the_daemon_and_in_process(argv, daemon, printer):
    fast = both_paths(argv, daemon, printer, between=printer.reset)
    assert "Traceback" not in fast.stderr and "no OctoPrint" not in fast.stderr


@pytest.mark.parametrize(
    "argv", [("8jog", "1", "0", "0"), ("8home",), ("octopanel", "jog", "z=-1"), ("8ex", "5")], ids=" ".join
)
def test_the_same_refusal_while_printing_on_both_paths(argv, daemon, printer):
    """jog and home go out without a state read first (OctoPrint refuses them itself): the words stay ours."""
    start_print(printer)
    mark = printer.mark()
    fast = both_paths(argv, daemon, printer)
    failed(fast, 1, "refused: the printer is printing (", "nothing sent")
    sent = sent_by(printer, mark)
    assert all(PRINT_MOVE.fullmatch(line) for line in sent), sent


def test_the_fast_path_really_goes_through_the_daemon(daemon, printer):
    sock, home, log = daemon
    mark = printer.mark()
    proc = run(("8msg", "via the daemon"), {"OCTOPANEL_SOCKET": str(sock), "OCTOPRINT_URL": printer.url}, home)
    assert proc.returncode == 0 and proc.stdout == "M117 via the daemon sent\n", proc.stderr
    printer.wait_sent(mark, ["M117 via the daemon"])
    deadline = time.monotonic() + 5  # the daemon logs the outcome after it has replied
    while 'socket: {"argv": ["msg", "via the daemon"]}' not in (log.seek(0) or log.read()):
        assert time.monotonic() < deadline, (log.seek(0), log.read())
        time.sleep(0.02)


def imports_of(argv, env):
    """(CompletedProcess, the modules argv imported beyond Python's start-up, e.g. an editable install's .pth)."""
    env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    at_start = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True, timeout=60)

    def modules(stderr):
        return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time")}

    return proc, modules(proc.stderr) - modules(at_start.stderr)


def test_the_fast_path_imports_neither_requests_nor_yaml_nor_evdev(daemon, printer):
    sock, home, _log = daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env.update(HOME=str(home), OCTOPANEL_SOCKET=str(sock), OCTOPRINT_URL=printer.url)
    proc, imported = imports_of([str(BIN / "8status")], env)
    assert proc.returncode == 0 and proc.stdout.startswith("Machine: ")
    assert "octopanel.cli.fast" in imported
    assert not {"requests", "yaml", "evdev", "octopanel.printers.octoprint.client", "octopanel.actions"} & imported
    assert not {"re", "json", "enum"} & imported  # ~5 ms of a ~15 ms command (see cli/fast.py)
    assert {m for m in imported if m.startswith("octopanel")} == {
        "octopanel",
        "octopanel.cli",
        "octopanel.cli.fast",
        "octopanel.settings_sources",
        "octopanel.daemon",
        "octopanel.daemon.protocol",
    }


def test_the_in_process_path_imports_neither_dataclasses_nor_difflib(printer, tmp_path):
    """`import dataclasses` (inspect, ast, dis…) was ~5 ms of every in-process command; difflib is for errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env.update(
        HOME=str(tmp_path), OCTOPRINT_URL=printer.url, OCTOPRINT_API_KEY=printer.api_key, OCTOPANEL_NO_DAEMON="1"
    )
    proc, imported = imports_of([str(BIN / "8jog"), "1"], env)
    assert proc.returncode == 0 and proc.stdout == "jogged z=1\n", proc.stderr
    assert {"requests", "octopanel.printers.octoprint.client", "octopanel.actions"} <= imported
    assert not {"dataclasses", "inspect", "difflib"} & imported


def test_local_actions_fall_back_to_in_process(daemon, printer, tmp_path):
    sock, home, _log = daemon
    gcode = tmp_path / "part.gcode"
    gcode.write_text("G28\n")
    proc = run(
        ("8upload", str(gcode)),
        {"OCTOPANEL_SOCKET": str(sock), "OCTOPRINT_URL": printer.url, "OCTOPRINT_API_KEY": printer.api_key},
        home,
    )
    assert proc.returncode == 0 and proc.stdout == "uploaded part.gcode (4 bytes)\n", proc.stderr
    proc = run(("8checkcfg", "--json"), {"OCTOPANEL_SOCKET": str(sock)}, home)
    assert json.loads(proc.stdout)["url"] is None  # the caller's own config, not the daemon's


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.text(), max_size=6))
def test_the_request_line_is_what_json_dumps_writes(words):
    assert protocol.encode_argv(words) == json.dumps({"argv": words}) + "\n"


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_a_reply_decodes_as_json_loads_does(value):
    line = json.dumps(value).encode()
    got, want = protocol.decode(line), json.loads(line)
    assert json.dumps(got) == json.dumps(want)  # NaN != NaN, so compare the dumps


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_a_garbled_reply_raises_value_error_exactly_when_json_loads_does(raw):
    try:
        want = json.loads(raw.decode("utf-8").strip())
    except ValueError:
        with pytest.raises(ValueError):
            protocol.decode(raw)
    else:
        assert json.dumps(protocol.decode(raw)) == json.dumps(want)


STAMPS = st.fixed_dictionaries(
    {
        "yaml": st.none() | st.lists(st.integers(0, 2**64), min_size=4, max_size=4),
        "octocmd": st.none() | st.lists(st.integers(0, 2**64), min_size=4, max_size=4),
        "url": st.none() | st.text(),
    }
)


@settings(max_examples=300, deadline=None)
@given(stamp=STAMPS)
def test_the_same_config_query_is_what_json_dumps_writes(stamp):
    """The daemon parses it with json.loads and compares it with settings.load's stamp: it must round-trip."""
    assert protocol.encode_query({"stamp": stamp}) == json.dumps({"same_config": {"stamp": stamp}}) + "\n"
