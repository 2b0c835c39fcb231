"""The action registry: one parser for every front end, bounds from settings, help, and the 8xxx scripts."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import BIN, LEAKY_PREFIXES
from hypothesis import given
from hypothesis import strategies as st

from octopanel import cli, settings
from octopanel.actions import build_registry
from octopanel.actions.registry import ANY, MOTION_OK, Action, Param, Registry
from octopanel.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def registry():
    return build_registry()


@pytest.fixture
def limits(tmp_path, monkeypatch):
    """The default limits, resolved with no config files in the way."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("OCTOPANEL_CONFIG", raising=False)
    return settings.load({}, None, env={}).limits


def args(registry, limits, line):
    return registry.parse_line(line, limits).args


# -- parse forms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        ("jog 1 0 0", {"x": 1.0, "y": 0.0, "z": 0.0}),
        ("jog 5", {"z": 5.0}),
        ("jog -2.5", {"z": -2.5}),
        ("jog z=5", {"z": 5.0}),
        ("jog x=0", {"x": 0.0}),  # zero is a value, not "absent"
        ("jog x=1 y=-2 speed=1500", {"x": 1.0, "y": -2.0, "speed": 1500}),
        ("fan on", {"speed": 255}),
        ("fan off", {"speed": 0}),
        ("fan 128", {"speed": 128}),
        ("fan speed=7", {"speed": 7}),
        ("fan2 on", {"on": True}),
        ("fan2 off", {"on": False}),
        ("alarm d t 50", {"heater": "tool", "target": 50.0, "falling": True, "interval": 2.0}),
        ("alarm b 60", {"heater": "bed", "target": 60.0, "falling": False, "interval": 2.0}),
        (
            "alarmq t 40 --interval 0.2 --timeout 9",
            {"heater": "tool", "target": 40.0, "falling": False, "interval": 0.2, "timeout": 9.0},
        ),
        ("beep", {"ms": 500, "hz": 2000}),
        ("beep 100 440", {"ms": 100, "hz": 440}),
        ("beep 100", {"ms": 100, "hz": 2000}),
        ("g 'm117 x'", {"code": "m117 x", "force": False}),
        ("g m117 x", {"code": "m117 x", "force": False}),
        ("g G0 X5 --force", {"code": "G0 X5", "force": True}),
        ("msg 'Hello World'", {"text": "Hello World"}),
        ("msg a=b c", {"text": "a=b c"}),
        ("gmulti 'm117 a' g28", {"commands": ["m117 a", "g28"], "force": False}),
        ("status -q", {"quiet": True}),
        ("status", {"quiet": False}),
        ("speed 150", {"percent": 150}),
        ("speed 150.0", {"percent": 150}),
        ("feed 95", {"percent": 95}),
        ("ex -5", {"amount": -5.0, "force": False}),
        ("ex 5 --force", {"amount": 5.0, "force": True}),
        ("fex 5", {"amount": 5.0, "speed": 2000, "force": False}),
        ("fex 5 900", {"amount": 5.0, "speed": 900, "force": False}),
        ("eject -t 200", {"temp": 200.0, "force": False, "timeout": 600.0}),
        ("eject -t 200 --timeout 30", {"temp": 200.0, "force": False, "timeout": 30.0}),
        ("servo 1 90", {"num": 1, "angle": 90}),
        ("sleep 1.5", {"s": 1.5}),
        ("sleepms 250", {"ms": 250}),
        ("upload -", {"path": "-"}),
        ("upload part.gcode name=x.gcode", {"path": "part.gcode", "name": "x.gcode"}),
        ("waitend --interval 0.2 --timeout 5", {"interval": 0.2, "timeout": 5.0}),
        ("settemp 200", {"temp": 200.0}),
        ("run reset", {"name": "reset"}),
    ],
)
def test_parse_forms(registry, limits, line, expected):
    assert args(registry, limits, line) == expected


def test_8xxx_names_and_aliases_reach_the_same_action(registry, limits):
    for alias, name in [
        ("statusraw", "status_raw"),
        ("gcode", "g"),
        ("extrude", "ex"),
        ("print", "start"),
        ("ListCmds", "listcmds"),
        ("run", "system"),
    ]:
        assert registry.get(alias) is registry.get(name)
    assert registry.parse("extrude", ["3"], limits).action.name == "ex"


@pytest.mark.parametrize(
    "line, match",
    [
        ("jog 1 2", "cannot read arguments '1 2'"),
        ("jog q=5", "unknown parameter 'q'"),
        ("jog z=1 z=2", "z given twice"),
        ("jog --bogus", "unknown option '--bogus'"),
        ("fan 256", "256 is above the maximum 255"),
        ("fan -1", "-1 is below the minimum 0"),
        ("fan maybe", "expected on, off or 0..255, got 'maybe'"),
        ("fan2 maybe", "expected true or false"),
        ("speed 5", "5 is below the minimum 10"),
        ("speed 600", "600 is above the maximum 500"),
        ("speed 1.5", "expected a whole number"),
        ("settemp 286", "286 is above the maximum 285"),
        ("setbed 121", "121 is above the maximum 120"),
        ("settemp -286", "a step of -286 is larger than the limit 285"),
        ("settemp ++5", r"expected a number or a signed step such as \+5 or -5, got '\+\+5'"),
        ("settemp +abc", r"got '\+abc'"),
        ("speed +0", "a step of '\\+0' changes nothing"),
        ("babystep z=0.3", "a step of \\+0.3 is larger than the limit 0.2"),
        ("settemp nan", "finite number"),
        ("jog x=301", "301 is above the maximum 300"),
        ("jog -301", "-301 is below the minimum -300"),
        ("ex 1001", "above the maximum 1000"),
        ("beep 0", "below the minimum 1"),
        ("servo 1 181", "above the maximum 180"),
        ("alarm x t 50", "cannot read arguments"),
        ("g 'unbalanced", "cannot split"),
        ("", "empty action line"),
    ],
)
def test_parse_errors(registry, limits, line, match):
    with pytest.raises(UsageError, match=match):
        registry.parse_line(line, limits)


@pytest.mark.parametrize("words", [["M117 a\nM104 S300"], ["M117 a\rb"], ["M117 \x07"], ["M117 \x00"], ["M117 \x7f"]])
@pytest.mark.parametrize("name", ["g", "gcode", "msg", "g0", "g1"])
def test_gcode_with_newline_or_control_char_is_refused(registry, limits, name, words):
    with pytest.raises(UsageError, match="one line without control characters"):
        registry.parse(name, words, limits)


def test_gmulti_refuses_a_control_char_in_any_line(registry, limits):
    with pytest.raises(UsageError, match="one line without control characters"):
        registry.parse("gmulti", ["M117 ok", "M117 a\nM104 S999"], limits)


def test_unknown_action_suggests_the_closest(registry):
    with pytest.raises(UsageError, match=r"unknown action 'jgo' \(did you mean 'jog'\?\)"):
        registry.get("jgo")
    with pytest.raises(UsageError, match=r"unknown action 'stauts' \(did you mean 'status'\?\)"):
        registry.get("stauts")


def test_bounds_follow_the_settings_limits(registry, limits):
    wider = dict(limits, max_tool_temp=300.0, max_jog=500.0, min_factor=1, max_factor=1000)
    assert registry.parse("settemp", ["300"], wider).args == {"temp": 300.0}
    assert registry.parse("jog", ["x=450"], wider).args == {"x": 450.0}
    assert registry.parse("jog", ["-450"], wider).args == {"z": -450.0}
    assert registry.parse("speed", ["5"], wider).args == {"percent": 5}
    assert registry.parse("feed", ["900"], wider).args == {"percent": 900}
    narrower = dict(limits, max_bed_temp=60.0, max_extrude=10.0)
    with pytest.raises(UsageError, match="61 is above the maximum 60"):
        registry.parse("setbed", ["61"], narrower)
    with pytest.raises(UsageError, match="-11 is below the minimum -10"):
        registry.parse("ex", ["-11"], narrower)


@given(st.floats(min_value=-300, max_value=300, allow_nan=False))
def test_jog_within_max_jog_parses_to_the_number_sent(value):
    """The number is rounded to the 0.001 mm it is sent as; one that rounds to 0 is refused (tests/test_numbers.py)."""
    limits = {name: settings.OPTIONS[name][1] for name in settings.LIMIT_NAMES}
    if value != 0 and round(value, 3) == 0:
        with pytest.raises(UsageError, match="rounds to 0"):
            build_registry().parse("jog", [f"z={value!r}"], limits)
    else:
        assert build_registry().parse("jog", [f"z={value!r}"], limits).args == {"z": round(value, 3) + 0.0}


@given(st.floats(min_value=300.001, max_value=1e9, allow_nan=False))  # 300.0004 is sent as 300
def test_jog_beyond_max_jog_is_refused(value):
    limits = {name: settings.OPTIONS[name][1] for name in settings.LIMIT_NAMES}
    with pytest.raises(UsageError, match="above the maximum 300"):
        build_registry().parse("jog", [f"x={value!r}"], limits)


def test_every_limit_name_used_as_a_bound_is_a_setting(registry, limits):
    for action in registry:
        for param in action.params:
            for bound in (param.minval, param.maxval):
                if isinstance(bound, str):
                    assert bound.lstrip("-") in settings.LIMIT_NAMES, (action.name, param.name, bound)


# -- registration --------------------------------------------------------------------------------------


def test_registering_a_name_twice_raises():
    reg = Registry()
    reg.register(Action("ping", lambda ctx: None, "ping", "Test"))
    with pytest.raises(ValueError, match="'ping' is registered twice"):
        reg.register(Action("ping", lambda ctx: None, "again", "Test"))


def test_registering_a_command_alias_twice_raises():
    reg = Registry()
    reg.register(Action("ping", lambda ctx: None, "ping", "Test", commands=("ping", "p")))
    with pytest.raises(ValueError, match="'p' is registered twice"):
        reg.register(Action("pong", lambda ctx: None, "pong", "Test", commands=("pong", "p")))
    assert [a.name for a in reg] == ["ping"]  # the failed registration left nothing behind


def test_build_registry_twice_gives_independent_registries():
    a, b = build_registry(), build_registry()
    assert a is not b and len(a) == len(b)
    a.register(Action("only_in_a", lambda ctx: None, "x", "Test"))
    with pytest.raises(UsageError):
        b.get("only_in_a")


def test_every_action_has_help_group_and_valid_states(registry):
    for action in registry:
        assert action.help.strip(), action.name
        assert action.group.strip(), action.name
        assert action.states <= ANY, action.name
        for param in action.params:
            assert isinstance(param, Param)


def test_only_printhead_actions_leave_the_state_check_to_octoprint(registry):
    """OctoPrint 1.11.8 refuses POST /api/printer/printhead (jog, home) with 409 when not operational or in
    any printing state (server/api/printer.py; util/comm.py PRINTING_STATES): exactly outside MOTION_OK.
    Every other guarded action reads the state first."""
    assert sorted(a.name for a in registry if a.backend_refuses) == ["home", "jog"]
    assert all(a.states == MOTION_OK and not a.reads_state_first for a in registry if a.backend_refuses)
    assert all(a.reads_state_first == (a.states != ANY) for a in registry if not a.backend_refuses)


def test_command_names_cover_every_8control_command(registry):
    names = set(registry.command_names())
    reference = {
        "checkcfg",
        "apiver",
        "status_raw",
        "statusraw",
        "status",
        "connect",
        "disconnect",
        "reconnect",
        "g",
        "gcode",
        "g0",
        "g1",
        "gmulti",
        "speed",
        "feed",
        "start",
        "print",
        "restart",
        "pause_raw",
        "pause",
        "resume",
        "cancel",
        "xcancel",
        "home",
        "jog",
        "settemp",
        "setbed",
        "settempr",
        "setbedr",
        "ex",
        "extrude",
        "fex",
        "eject",
        "upload",
        "runfile",
        "fselect",
        "ls_raw",
        "ls",
        "ll",
        "getjob",
        "gettemp_raw",
        "gettemp",
        "getbed_raw",
        "getbed",
        "fan",
        "fan2",
        "servo",
        "run",
        "ListCmds",
        "reset",
        "on",
        "off",
        "msg",
        "beep",
        "alarm",
        "alarmq",
        "click",
        "getpos",
        "waitend",
        "sleep",
        "sleepms",
        "stepon",
        "stepoff",
    }
    octopanel_own = {"babystep", "estop"}  # commands 8control did not have
    assert names == reference | octopanel_own


def test_pyproject_commands_are_exactly_the_registry_commands(registry):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    commands = project["tool"]["octopanel"]["commands"]
    assert len(commands) == len(set(commands))
    assert set(commands) == {"8" + name for name in registry.command_names()}
    assert "scripts" not in project["project"]  # setup.py writes them (see its docstring)


def test_installed_scripts_run_cli_main_without_importing_re(registry):
    """pip's console_scripts wrapper imports `re` (~5 ms); ours must not, or the fast path pays for it."""
    for name in ["octopanel", *("8" + n for n in registry.command_names())]:
        lines = (BIN / name).read_text().splitlines()
        assert lines[0].startswith("#!") and "python" in lines[0], (name, lines[0])
        assert lines[1:] == ["from octopanel.cli import script", "script()"], name


def script_env(tmp_path):
    """An environment whose sitecustomize writes a marker at interpreter teardown (atexit)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import atexit, os\natexit.register(lambda: open(os.environ['TEARDOWN_MARKER'], 'a').write('torn down\\n'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env.update(
        PYTHONPATH=str(tmp_path), TEARDOWN_MARKER=str(tmp_path / "marker"), HOME=str(tmp_path), OCTOPANEL_NO_DAEMON="1"
    )
    return env


@pytest.mark.parametrize(
    "argv, torn_down",
    [
        (["8checkcfg"], False),
        (["8jog", "1", "2", "3", "4"], False),
        (["octopanel", "--help"], False),
        (["octopanel", "check", "--keymap", str(ROOT / "etc" / "keymap.yaml")], True),
    ],
)
def test_printer_commands_skip_the_interpreter_teardown(tmp_path, argv, torn_down):
    """A printer command leaves with os._exit once its output is flushed (~15 ms saved with requests
    loaded); daemon and other meta commands, which may hold threads and files, tear down normally."""
    env = script_env(tmp_path)
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout + proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (tmp_path / "marker").exists() == torn_down, (proc.returncode, proc.stderr)
    if not torn_down:  # and the output still arrives whole
        reference = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from octopanel.cli import main; sys.exit(main(sys.argv[2:], sys.argv[1]))",
                argv[0],
                *argv[1:],
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (reference.returncode, reference.stdout, reference.stderr)


def test_output_into_a_closed_pipe_exits_0_quietly(tmp_path):
    """`octopanel --help | true`: the reader is gone; no traceback, no 'Exception ignored', exit 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [str(BIN / "octopanel"), "--help"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=script_env(tmp_path),
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_every_script_is_installed_beside_the_interpreter(registry):
    missing = [name for name in registry.command_names() if not (BIN / ("8" + name)).exists()]
    assert not missing, f"run pip install -e . (missing: {missing})"


# -- help ----------------------------------------------------------------------------------------------


def test_help_lists_every_command(registry, capsys):
    assert cli.main(["-h"], prog="octopanel") == 0
    out = capsys.readouterr().out
    words = set(out.split())
    for name in registry.command_names():
        assert "8" + name in words, name
    assert "octopanel login" in out


def test_help_from_an_installed_8_command_lists_every_command(registry):
    proc = subprocess.run([str(BIN / "octopanel"), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    words = set(proc.stdout.split())
    assert {"8" + name for name in registry.command_names()} <= words


def test_no_action_prints_help_to_stderr_and_exits_2(capsys):
    assert cli.main([], prog="octopanel") == 2
    captured = capsys.readouterr()
    assert "usage: octopanel" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    "prog, argv, expected",
    [
        ("8jog", ["-h"], ["usage: jog [X] [Y] [Z] [SPEED]", "runs only when the printer is idle or paused"]),
        ("octopanel", ["help", "fan"], ["usage: fan SPEED", "on, off or 0..255 (0..255)"]),
        ("octopanel", ["settemp", "--help"], ["usage: settemp TEMP", "0..max_tool_temp"]),
    ],
)
def test_command_help(prog, argv, expected, capsys):
    assert cli.main(argv, prog=prog) == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out


def test_every_command_has_its_own_help(registry, capsys):
    for name in registry.command_names():
        assert cli.main(["-h"], prog="8" + name) == 0
        out = capsys.readouterr().out
        action = registry.get(name)
        assert out.startswith("usage: ") and action.help in out, name


def test_usage_errors_exit_2_before_any_config_is_needed(tmp_path, monkeypatch, capsys):
    """Parsing happens before the connection is required, so a bad line says what is wrong with it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("OCTOPRINT_URL", raising=False)
    monkeypatch.delenv("OCTOPRINT_API_KEY", raising=False)
    monkeypatch.delenv("OCTOPANEL_CONFIG", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert cli.main(["256"], prog="8fan") == 2
    assert "8fan: fan: speed: 256 is above the maximum 255" in capsys.readouterr().err


def test_jog_needs_an_axis(registry, limits):
    for line in ("jog", "jog speed=1000"):
        with pytest.raises(UsageError, match="give at least one of x, y, z"):
            registry.parse_line(line, limits)


def test_extrude_zero_is_refused_while_parsing(registry, limits):
    with pytest.raises(UsageError, match="amount must not be 0"):
        registry.parse_line("ex 0 --force", limits)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("msg '--- done ---'", {"text": "--- done ---"}),
        ("msg '-- 50% --'", {"text": "-- 50% --"}),
        ("msg -- --x", {"text": "--x"}),
    ],
)
def test_free_text_may_start_with_dashes(registry, limits, line, expected):
    """A message or G-code comment is text: `8msg "--- done ---"` must not be read as an unknown option."""
    assert args(registry, limits, line) == expected


def test_options_accept_the_equals_form_like_the_global_ones(registry, limits):
    """`--url=X` works for the global options, so `--timeout=5` should work for an action's options."""
    assert args(registry, limits, "waitend --timeout=5 --interval=0.5") == {"timeout": 5.0, "interval": 0.5}


def test_every_command_is_run_end_to_end_somewhere(registry):
    """Each 8xxx name is invoked by name in at least one end-to-end test file (tests/test_cmd_*.py)."""
    sources = "".join(p.read_text() for p in sorted((ROOT / "tests").glob("test_cmd_*.py")))
    missing = [name for name in registry.command_names() if f'"8{name}"' not in sources]
    assert not missing, f"no end-to-end test runs: {missing}"


def test_msg_without_text_clears_the_display(registry, limits):
    """A bare M117 is how firmware clears its message line, so `8msg` with no text is allowed."""
    assert registry.parse("msg", [], limits).args == {"text": ""}
    assert registry.parse("msg", ["  "], limits).args == {"text": ""}
