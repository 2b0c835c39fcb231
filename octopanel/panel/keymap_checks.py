"""Validation helpers for keymap.yaml: typed settings, allowed keys, states, modes, devices, key names."""

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from octopanel import lineyaml
from octopanel import values as values_mod
from octopanel.actions.registry import ANY
from octopanel.errors import ConfigError
from octopanel.input import keynames
from octopanel.panel import gesture_config, rotary
from octopanel.printers.backend import BUSY_STATES

if TYPE_CHECKING:
    from octopanel.input.devicespec import DeviceSpec

WHEN = {
    "idle": frozenset({"idle"}),
    "printing": BUSY_STATES,
    "paused": frozenset({"paused"}),
    "disconnected": frozenset({"disconnected", "error"}),
    "any": ANY,
}
# name: (converter, default, min, max)
SETTINGS = {
    "hold_s": (values_mod.to_float, gesture_config.HOLD_S, 0.1, 10.0),
    "double_s": (values_mod.to_float, gesture_config.DOUBLE_S, 0.05, 2.0),
    "repeat_delay_s": (values_mod.to_float, gesture_config.REPEAT_DELAY_S, 0.05, 5.0),
    "repeat_s": (values_mod.to_float, gesture_config.REPEAT_S, 0.02, 5.0),
    "stale_s": (values_mod.to_float, 2.0, 0.1, 60.0),
    "pause_deadline_s": (values_mod.to_float, 30.0, 1.0, 3600.0),
    "max_outstanding_mm": (values_mod.to_float, 50.0, 0.1, 1000.0),
    "max_repeat_mm": (values_mod.to_float, 100.0, 0.1, 1000.0),  # how far one hold may travel by repeats
    "shuttle_idle_s": (values_mod.to_float, rotary.SHUTTLE_IDLE_S, 0.05, 5.0),
}
FEEDBACK = {
    "beep": (values_mod.to_bool, False, None, None),
    "message": (values_mod.to_bool, False, None, None),
    "leds": (values_mod.to_str, "mode", None, None),
}
LED_CHOICES = ("off", "mode", "state")
YAML_TRAP = "YAML read this as {got!r}: quote it if you meant the text (YAML turns on/off/yes/no into true/false)"


@dataclass
class Mode:
    """A named mode: an ordered list of values cycled by a key (`mode step next`)."""

    values: list[Any]
    default: object


def load_modes(section: Any, file: str) -> dict[str, Mode]:
    modes: dict[str, Mode] = {}
    if section is None:
        return modes
    expect_mapping(section, file, None, "modes")
    for name, spec in section.items():
        path = f"modes.{name}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", str(name)):
            raise ConfigError("a mode name is lower-case letters, digits and _", file, line(section, name), path)
        if not isinstance(spec, dict):
            raise ConfigError("expected {values: [...], default: ...}", file, line(section, name), path)
        check_keys(spec, ("values", "default"), file, path)
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError("values: expected a non-empty list", file, line(spec, "values"), f"{path}.values")
        for value in values:
            if isinstance(value, bool) or value is None:
                raise ConfigError(YAML_TRAP.format(got=value), file, line(spec, "values"), f"{path}.values")
            problem = mode_value_problem(value)
            if problem:
                raise ConfigError(problem, file, line(spec, "values"), f"{path}.values")
        default = spec.get("default", values[0])
        if default not in values:
            raise ConfigError(
                f"default {values_mod.show(default)} is not one of the values",
                file,
                line(spec, "default"),
                f"{path}.default",
            )
        modes[str(name)] = Mode(values, default)
    return modes


# A mode value is put into action lines as it is ({step} in `jog z={step}`): a number or one word, so
# that it can never add a parameter ('1 x=300'), a flag or a second G-code word to the line.
MODE_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def mode_value_problem(value: object) -> str | None:
    """An error text if `value` cannot be a mode value, else None."""
    if isinstance(value, (int, float)):
        return None if value == value and abs(value) != float("inf") else f"expected a finite number, got {value}"
    if isinstance(value, str) and MODE_VALUE.fullmatch(value):
        return None
    return (
        f"expected a number or one word (letters, digits, _), got {values_mod.show(value)}: a mode value is "
        "put into action lines as it is, so it may not carry spaces or other words"
    )


def load_devices(section: Any, file: str) -> "list[DeviceSpec]":
    from octopanel.input.devicespec import DeviceSpec

    if section is None:
        return []
    if not isinstance(section, list):
        raise ConfigError("expected a list of devices (- name: '*Keypad*')", file, None, "devices")
    return [
        DeviceSpec.from_config(spec, file, getattr(spec, "line", None), f"devices[{index}]")
        for index, spec in enumerate(section)
    ]


def check_key_name(key: str, file: str, line_no: int | None, path: str) -> str:
    """The canonical name of a key (any evdev alias is accepted), or a ConfigError with a hint."""
    try:
        return keynames.canonical(key)
    except KeyError:
        hint = values_mod.suggest(key, keynames.all_key_names())
        raise ConfigError(f"unknown key name '{key}'{hint}", file, line_no, path) from None


def parse_when(value: object, file: str, line_no: int | None, path: str) -> frozenset[str]:
    words = value if isinstance(value, list) else str(value).replace("|", " ").split()
    states: frozenset[str] = frozenset()
    for word in words:
        if word not in WHEN:
            raise ConfigError(
                f"unknown state '{word}'{values_mod.suggest(word, WHEN)}; use {' | '.join(WHEN)}", file, line_no, path
            )
        states |= WHEN[word]
    return states


def typed_section(section: Any, schema: Mapping[str, tuple[Any, ...]], file: str, path: str) -> dict[str, Any]:
    section = section or {}
    expect_mapping(section, file, None, path)
    check_keys(section, schema, file, path)
    return {
        k: typed(section[k], spec, file, line(section, k), f"{path}.{k}") if k in section else spec[1]
        for k, spec in schema.items()
    }


def typed(
    value: object, spec: tuple[Callable[[Any], Any], Any, Any, Any], file: str, line_no: int | None, path: str
) -> Any:
    convert, _default, lo, hi = spec
    try:
        result = convert(value)
    except ValueError as exc:
        raise ConfigError(str(exc), file, line_no, path) from None
    problem = values_mod.check_range(result, lo, hi) if isinstance(result, (int, float)) else None
    if problem:
        raise ConfigError(problem, file, line_no, path)
    return result


def check_keys(mapping: Mapping[Any, Any], allowed: Collection[str], file: str, path: str) -> None:
    for key in mapping:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"unknown key{values_mod.suggest(key, allowed)}", file, line(mapping, key), where)


def expect_mapping(value: object, file: str, parent: object, path: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError("expected a mapping", file, line(parent, path) if parent else None, path)


def line(mapping: object, key: object) -> int | None:
    return lineyaml.line_of(mapping, key) if isinstance(mapping, dict) else None
