"""keymap.yaml validation: golden bad files with their exact messages, and the shipped keymaps load."""

from pathlib import Path

import pytest

from octopanel import settings
from octopanel.actions import build_registry
from octopanel.errors import ConfigError
from octopanel.panel import keymap

HERE = Path(__file__).parent
ROOT = HERE.parent
LIMITS = settings.load(env={}).limits
GOLDEN = sorted((HERE / "keymaps").glob("*.yaml"))


def load(path):
    return keymap.load(path, build_registry(), LIMITS)


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_bad_keymap_gives_its_exact_message(path, monkeypatch):
    expected = path.read_text().splitlines()[0].removeprefix("# error: ")
    monkeypatch.chdir(path.parent)  # messages name the file as given
    with pytest.raises(ConfigError) as info:
        load(path.name)
    assert str(info.value) == expected


def test_there_are_golden_files():
    assert len(GOLDEN) >= 15


@pytest.mark.parametrize(
    "path", [ROOT / "etc" / "keymap.yaml", *sorted((ROOT / "etc" / "examples").glob("*.yaml"))], ids=lambda p: p.name
)
def test_shipped_keymaps_load(path):
    km = load(path)
    assert km.bindings or km.rotary


def test_default_keymap_binds_both_numlock_states_and_guards_danger():
    km = load(ROOT / "etc" / "keymap.yaml")
    for on, off in (
        ("KEY_KP8", "KEY_UP"),
        ("KEY_KP2", "KEY_DOWN"),
        ("KEY_KP4", "KEY_LEFT"),
        ("KEY_KP6", "KEY_RIGHT"),
        ("KEY_KPDOT", "KEY_DELETE"),
        ("KEY_KP0", "KEY_INSERT"),
    ):
        assert km.gestures_of(on) == km.gestures_of(off) != set()
    registry = build_registry()
    defaults = {name: mode.default for name, mode in km.modes.items()}
    for (_layer, key, gesture), bindings in km.bindings.items():
        for binding in bindings:
            if registry.parse_line(binding.render(defaults), LIMITS).danger() is not None:
                assert gesture in ("hold", "double"), (key, gesture, binding.line)


def test_the_shipped_jog_and_home_keys_cost_one_request():
    """No `when:` on them, and an action OctoPrint refuses itself: no state request before the move."""
    km = load(ROOT / "etc" / "keymap.yaml")
    registry = build_registry()
    for key in ("KEY_KP8", "KEY_UP", "KEY_KP2", "KEY_KP4", "KEY_KP6", "KEY_KP7", "KEY_HOME"):
        bindings = km.bindings[("", key, "press")]
        assert not km.needs_state(bindings), key
        assert not registry.get(bindings[0].line.split()[0]).reads_state_first, key


def test_when_guards_pick_the_binding_for_the_state():
    km = load(ROOT / "etc" / "keymap.yaml")
    assert km.lookup("", "KEY_KPENTER", "press", "printing").line == "pause"
    assert km.lookup("", "KEY_KPENTER", "press", "paused").line == "resume"
    assert km.lookup("", "KEY_KPENTER", "press", "idle") is None
    assert km.lookup("", "KEY_KP9", "press", "idle").line == "jog z={step}"
    assert km.lookup("", "KEY_KP9", "press", "printing").line == "babystep z=0.02"


def test_layers_fall_back_to_the_base_layer(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text(
        "keys:\n  KEY_KPMINUS: {shift: fn}\n  KEY_KP8: jog y=1\n  fn+KEY_KP8: jog z=1\n  KEY_KP2: jog y=-1\n"
    )
    km = load(path)
    assert km.lookup("fn", "KEY_KP8", "press", "idle").line == "jog z=1"
    assert km.lookup("fn", "KEY_KP2", "press", "idle").line == "jog y=-1"
    assert km.lookup("", "KEY_KP8", "press", "idle").line == "jog y=1"


def test_aliases_are_accepted_and_canonicalised(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text("keys:\n  BTN_MISC: home\n")
    km = load(path)
    assert ("", "BTN_0", "press") in km.bindings


def test_check_command_reports_ok_and_errors(tmp_path):
    import subprocess
    import sys

    good = subprocess.run(
        [sys.executable, "-m", "octopanel", "check", str(ROOT / "etc" / "keymap.yaml")],
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert good.returncode == 0 and "OK" in good.stdout, good.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "octopanel", "check", "unknown_action.yaml"],
        cwd=HERE / "keymaps",
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2
    assert "unknown_action.yaml:5: keys.KEY_KP5: unknown action 'jgo' (did you mean 'jog'?)" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("gesture", ["hold", "double"])
@pytest.mark.parametrize(
    "line", ["g M112", "g m81", "gmulti 'M117 bye' M0", "gmulti G28 'M1'", "pause_raw", "system reboot", "off"]
)
def test_a_line_dangerous_by_its_effect_may_be_bound_to_hold_or_double(tmp_path, line, gesture):
    path = tmp_path / "keymap.yaml"
    path.write_text(f'keys:\n  KEY_KP5: {{{gesture}: "{line}"}}\n')
    assert load(path).bindings[("", "KEY_KP5", gesture)][0].line == line


@pytest.mark.parametrize("line", ["g M117 hello", "g M104 S200", "gmulti M117 'M300 S440 P100'", "g0 X10", "pause"])
def test_a_harmless_line_may_be_bound_to_a_press(tmp_path, line):
    path = tmp_path / "keymap.yaml"
    path.write_text(f'keys:\n  KEY_KP5: "{line}"\n')
    assert load(path).bindings[("", "KEY_KP5", "press")][0].line == line


def test_mode_values_may_be_numbers_or_words(tmp_path):
    path = tmp_path / "keymap.yaml"
    path.write_text(
        "modes:\n  axis: {values: [x, y, z]}\n  step: {values: [0.1, '1', 10]}\nkeys:\n  KEY_KP8: jog {axis}={step}\n"
    )
    assert load(path).modes["step"].values == [0.1, "1", 10]


@pytest.mark.parametrize("value", ["'1 x=300'", "'x=1'", "'--force'", "'1;M112'", ".nan", "[1]", "''"])
def test_mode_values_that_would_splice_text_into_a_line_are_refused(tmp_path, value):
    path = tmp_path / "keymap.yaml"
    path.write_text(f"modes:\n  step: {{values: [1, {value}]}}\nkeys:\n  KEY_KP8: jog z={{step}}\n")
    with pytest.raises(ConfigError, match=r"keymap.yaml:2: modes.step.values: expected a (finite )?number"):
        load(path)


def test_check_command_rejects_force_with_file_and_line(tmp_path):
    import subprocess
    import sys

    bad = subprocess.run(
        [sys.executable, "-m", "octopanel", "check", "force_bound.yaml"],
        cwd=HERE / "keymaps",
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2, bad
    assert "force_bound.yaml:4: keys.KEY_KP5: --force is a shell override and cannot be bound" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_validating_a_keymap_never_imports_the_device_manager(tmp_path):
    """`octopanel check` and a reload parse `devices:` with input/devicespec.py alone: the runtime device manager
    (input/devices.py: hotplug, replay, evdev sources) stays unloaded (before, keymap_checks imported it)."""
    import subprocess
    import sys

    path = tmp_path / "keymap.yaml"
    path.write_text('devices:\n  - name: "*keypad*"\n  - {id: "0b33:0020", shuttle: true}\nkeys:\n  KEY_KP5: msg a\n')
    probe = (
        "import sys; from octopanel import settings; from octopanel.panel import keymap; "
        "from octopanel.actions import build_registry; "
        f"km = keymap.load({str(path)!r}, build_registry(), settings.load(env={{}}).limits); "
        "print(len(km.devices), 'octopanel.input.devices' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["2", "False"], out.stderr
