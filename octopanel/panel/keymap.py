"""keymap.yaml → bindings, every action line validated through the registry at load time."""

import itertools
import os
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from octopanel import lineyaml, values
from octopanel.actions.registry import ANY, Call, Registry
from octopanel.errors import ConfigError, UsageError
from octopanel.panel import gestures
from octopanel.panel.keymap_checks import (  # noqa: F401
    FEEDBACK,
    LED_CHOICES,
    SETTINGS,
    YAML_TRAP,
    Mode,
    check_key_name,
    check_keys,
    expect_mapping,
    line,
    load_devices,
    load_modes,
    parse_when,
    typed,
    typed_section,
)

GESTURES = ("press", "release", "hold", "repeat", "double")
ROTARY_SOURCES = ("REL_DIAL", "REL_WHEEL", "REL_HWHEEL")
TOP_KEYS = ("devices", "modes", "settings", "keys", "rotary", "feedback")
BINDING_KEYS = GESTURES + ("when", "hold_s", "double_s", "repeat_s", "repeat_delay_s", "max_distance", "shift")
ROTARY_KEYS = ("action", "keys", "when", "max_distance", "shuttle")
# A keypad's keymap is a few KB; PyYAML needs about a second per MB, so a bigger file is a mistake.
MAX_KEYMAP_BYTES = 2**20
# What loading passes down: (file, registry, limits, modes)
LoadContext = tuple[str, Registry, dict[str, float], dict[str, Mode]]


@dataclass
class Binding:
    """One gesture of one key: an action line template, valid in the states of `when`."""

    line: str
    when: frozenset[str]
    line_no: int | None
    path: str
    options: dict[str, Any] = field(default_factory=dict)
    placeholders: tuple[str, ...] = ()
    action: Any = None  # the registry's Action, as the parser read the line: never re-derived from the text
    mergeable: bool = True  # every rendering of the line adds up when merged (Call.mergeable): jog, ex, +5 steps

    def render(self, modes: dict[str, Any]) -> str:
        """The action line with the current mode values put in."""
        return self.line.format(**{name: modes[name] for name in self.placeholders}) if self.placeholders else self.line


@dataclass
class Keymap:
    """A validated keymap: devices, modes, settings and bindings by (layer, key, gesture)."""

    file: str
    devices: list[Any] = field(default_factory=list)  # input.devicespec.DeviceSpec
    modes: dict[str, Mode] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    feedback: dict[str, Any] = field(default_factory=dict)
    bindings: dict[tuple[str, str, str], list[Binding]] = field(
        default_factory=dict
    )  # (layer, key, gesture) -> [Binding]
    shifts: dict[str, str] = field(default_factory=dict)  # key -> layer held while the key is down
    rotary: dict[str, list[Binding]] = field(default_factory=dict)  # source -> [Binding]
    key_pairs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # knob name -> (up key, down key)
    shuttle: bool = False
    timings: dict[str, gestures.KeyTiming] = field(default_factory=dict)  # key -> gestures.KeyTiming

    def gestures_of(self, key: str) -> set[str]:
        """Every gesture bound to `key` in any layer (the gesture engine needs them for its timing)."""
        return {g for (_layer, k, g) in self.bindings if k == key}

    def lookup(self, layer: str, key: str, gesture: str, state: str | None) -> Binding | None:
        """The binding for this gesture in this printer state, falling back from `layer` to the base layer."""
        for candidate_layer in (layer, "") if layer else ("",):
            for binding in self.bindings.get((candidate_layer, key, gesture), ()):
                if fits(binding, state):
                    return binding
        return None

    def lookup_rotary(self, source: str, state: str | None) -> Binding | None:
        return next((b for b in self.rotary.get(source, ()) if fits(b, state)), None)

    def needs_state(self, bindings: Iterable[Binding]) -> bool:
        """Whether choosing among these bindings depends on the printer's state."""
        return any(b.when != ANY for b in bindings)


def fits(binding: Binding, state: str | None) -> bool:
    """state None means 'not fetched': only bindings valid in any state fit."""
    return binding.when == ANY if state is None else state in binding.when


def load(path: "str | os.PathLike[str]", registry: Registry, limits: dict[str, float]) -> Keymap:
    """Read and validate a keymap file; raise ConfigError(file, line, key path) on the first problem."""
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0  # load_file says what is wrong with the path
    if size > MAX_KEYMAP_BYTES:
        raise ConfigError(
            f"the file is {size / 1e6:.1f} MB, over the {MAX_KEYMAP_BYTES // 2**20} MB a keymap may "
            "be (a keypad's keymap is a few KB): is this the right file?",
            str(path),
        )
    data = lineyaml.load_file(path)
    return build(data, str(path), registry, limits)


def build(data: Any, file: str, registry: Registry, limits: dict[str, float]) -> Keymap:
    if data is None:
        data = lineyaml.LineDict()
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with keys: " + ", ".join(TOP_KEYS), file, getattr(data, "line", 1))
    check_keys(data, TOP_KEYS, file, "")
    km = Keymap(file=file)
    km.settings = typed_section(data.get("settings"), SETTINGS, file, "settings")
    km.feedback = typed_section(data.get("feedback"), FEEDBACK, file, "feedback")
    if km.feedback["leds"] not in LED_CHOICES:
        raise ConfigError(
            f"expected one of {', '.join(LED_CHOICES)}", file, line(data.get("feedback"), "leds"), "feedback.leds"
        )
    km.devices = load_devices(data.get("devices"), file)
    km.modes = load_modes(data.get("modes"), file)
    ctx = (file, registry, limits, km.modes)
    keys = data.get("keys") or {}
    expect_mapping(keys, file, data, "keys")
    for name, spec in keys.items():
        load_key(km, str(name), spec, lineyaml.line_of(keys, name), ctx)
    layers = set(km.shifts.values())
    for name in keys:
        layer = str(name).rpartition("+")[0]
        if layer and layer not in layers:
            raise ConfigError(
                f"unknown layer '{layer}'{values.suggest(layer, layers)}: declare it with a key "
                f"bound to {{shift: {layer}}}",
                file,
                lineyaml.line_of(keys, name),
                f"keys.{name}",
            )
    rotary = data.get("rotary") or {}
    expect_mapping(rotary, file, data, "rotary")
    for name, spec in rotary.items():
        load_rotary(km, str(name), spec, lineyaml.line_of(rotary, name), ctx)
    build_timings(km, keys)
    return km


def build_timings(km: Keymap, keys: dict[Any, Any]) -> None:
    """One KeyTiming per bound key: which gestures it has (a click waits for hold/double) and its thresholds."""
    for _layer, key, _gesture in km.bindings:
        if key in km.timings:
            continue
        options = dict(km.settings)
        for (_l, k, _g), others in km.bindings.items():
            if k == key:
                for binding in others:
                    options.update(binding.options)
        try:
            km.timings[key] = gestures.KeyTiming(
                km.gestures_of(key),
                options["hold_s"],
                options["double_s"],
                options["repeat_delay_s"],
                options["repeat_s"],
            )
        except ValueError as exc:
            first = km.bindings[(_layer, key, _gesture)][0]
            raise ConfigError(
                str(exc), km.file, first.line_no, first.path.split(".")[0] + "." + first.path.split(".")[1]
            ) from None
    for key in km.shifts:
        km.timings[key] = gestures.KeyTiming(frozenset({"press", "release"}))


def load_key(km: Keymap, name: str, spec: Any, line_no: int | None, ctx: LoadContext) -> None:
    file = ctx[0]
    path = f"keys.{name}"
    layer, _, key = name.rpartition("+")
    key = check_key_name(key, file, line_no, path)
    alternatives = spec if isinstance(spec, list) else [spec]
    for index, alt in enumerate(alternatives):
        alt_path = f"{path}[{index}]" if isinstance(spec, list) else path
        alt_line = getattr(alt, "line", line_no)
        if isinstance(alt, dict):
            check_keys(alt, BINDING_KEYS, file, alt_path)
            if "shift" in alt:
                km.shifts[key] = str(alt["shift"])
                continue
            when = parse_when(alt.get("when", "any"), file, line(alt, "when"), f"{alt_path}.when")
            options = {
                k: typed(alt[k], SETTINGS.get(k) or SETTINGS["max_repeat_mm"], file, line(alt, k), f"{alt_path}.{k}")
                for k in ("hold_s", "double_s", "repeat_s", "repeat_delay_s", "max_distance")
                if k in alt
            }
            bound = [g for g in GESTURES if g in alt]
            if not bound:
                raise ConfigError(f"no gesture given: use one of {', '.join(GESTURES)}", file, alt_line, alt_path)
            for gesture in bound:
                binding = make_binding(
                    alt[gesture], when, line(alt, gesture), f"{alt_path}.{gesture}", ctx, options, gesture
                )
                km.bindings.setdefault((layer, key, gesture), []).append(binding)
        else:
            binding = make_binding(alt, ANY, alt_line if isinstance(spec, list) else line_no, alt_path, ctx, {})
            km.bindings.setdefault((layer, key, "press"), []).append(binding)


def check_call(call: Call, rendered: str, gesture: str) -> str | None:
    """What a binding may not carry, as an error text or None: the shell's --force, or a call that is
    dangerous by its effect (cancel, power, M112 in raw G-code...) on anything but a hold or double press."""
    if call.forced:
        return "--force is a shell override and cannot be bound"
    try:
        reason = call.danger()
    except ValueError as exc:  # G-code the firmware would misread
        return str(exc)
    if reason is not None and gesture not in ("hold", "double"):
        return f"'{rendered}' is dangerous ({reason}): bind it to hold or double, not {gesture}"
    return None


def load_rotary(km: Keymap, name: str, spec: Any, line_no: int | None, ctx: LoadContext) -> None:
    file = ctx[0]
    path = f"rotary.{name}"
    if isinstance(spec, dict):
        check_keys(spec, ROTARY_KEYS, file, path)
        if "keys" in spec:
            pair = spec["keys"]
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ConfigError("keys: expected [UP_KEY, DOWN_KEY]", file, line(spec, "keys"), f"{path}.keys")
            km.key_pairs[name] = tuple(check_key_name(str(k), file, line(spec, "keys"), f"{path}.keys") for k in pair)
        elif name not in ROTARY_SOURCES:
            raise ConfigError(
                f"unknown rotary source{values.suggest(name, ROTARY_SOURCES)}; use one of "
                f"{', '.join(ROTARY_SOURCES)} or give keys: [UP, DOWN]",
                file,
                line_no,
                path,
            )
        if spec.get("shuttle") is not None:
            km.shuttle = typed(spec["shuttle"], FEEDBACK["beep"], file, line(spec, "shuttle"), f"{path}.shuttle")
        when = parse_when(spec.get("when", "any"), file, line(spec, "when"), f"{path}.when")
        options = {}
        if "max_distance" in spec:
            options["max_distance"] = typed(
                spec["max_distance"],
                SETTINGS["max_outstanding_mm"],
                file,
                line(spec, "max_distance"),
                f"{path}.max_distance",
            )
        if "action" not in spec:
            raise ConfigError("missing action", file, line_no, path)
        binding = make_binding(
            spec["action"], when, line(spec, "action"), f"{path}.action", ctx, options, "a rotary detent"
        )
    else:
        if name not in ROTARY_SOURCES:
            raise ConfigError(f"unknown rotary source{values.suggest(name, ROTARY_SOURCES)}", file, line_no, path)
        binding = make_binding(spec, ANY, line_no, path, ctx, {}, "a rotary detent")
    if not binding.mergeable:
        raise ConfigError(
            f"a rotary binding needs an action that adds up per detent (jog, ex or a step such as "
            f"'settemp +1'), got '{binding.line}'",
            file,
            binding.line_no,
            binding.path,
        )
    km.rotary.setdefault(name, []).append(binding)


def make_binding(
    value: Any,
    when: frozenset[str],
    line_no: int | None,
    path: str,
    ctx: LoadContext,
    options: dict[str, Any],
    gesture: str = "press",
) -> Binding:
    """Validate one action line: parse it through the registry with every value of every mode it uses, and
    check each resulting call for `gesture` (check_call)."""
    file, registry, limits, modes = ctx
    if isinstance(value, bool) or value is None:
        raise ConfigError(YAML_TRAP.format(got=value), file, line_no, path)
    if not isinstance(value, (str, int, float)):
        raise ConfigError(
            f"expected an action line such as 'jog z=1', got a {type(value).__name__}", file, line_no, path
        )
    text = str(value)
    try:
        names = [f[1] for f in string.Formatter().parse(text) if f[1] is not None]
    except ValueError as exc:
        raise ConfigError(f"bad placeholder: {exc}", file, line_no, path) from None
    for name in names:
        if name not in modes:
            raise ConfigError(f"unknown mode '{{{name}}}'{values.suggest(name, modes)}", file, line_no, path)
    placeholders = tuple(dict.fromkeys(names))
    combos = itertools.product(*(modes[n].values for n in placeholders)) if placeholders else [()]
    binding = Binding(text, when, line_no, path, options, placeholders)
    for combo in combos:
        rendered = binding.render(dict(zip(placeholders, combo)))
        shown = f" (with {', '.join(f'{n}={v}' for n, v in zip(placeholders, combo))})" if placeholders else ""
        try:
            call = registry.parse_line(rendered, limits)
        except UsageError as exc:
            raise ConfigError(f"{exc}{shown}", file, line_no, path) from None
        problem = check_call(call, rendered, gesture)
        if problem:
            raise ConfigError(f"{problem}{shown}", file, line_no, path)
        if binding.action not in (None, call.action):  # the panel decides by the action: one per binding
            raise ConfigError(
                f"the action must not depend on a mode: '{binding.action.name}' or '{call.action.name}'{shown}",
                file,
                line_no,
                path,
            )
        binding.action = call.action
        binding.mergeable = binding.mergeable and call.mergeable
        if call.action.panel_mode:
            check_mode_call(call, modes, file, line_no, path)
    return binding


def check_mode_call(call: Call, modes: dict[str, Mode], file: str, line_no: int | None, path: str) -> None:
    name, value = call.args["name"], call.args["value"]
    if name not in modes:
        raise ConfigError(f"unknown mode '{name}'{values.suggest(name, modes)}", file, line_no, path)
    if value not in ("next", "prev") and value not in [str(v) for v in modes[name].values]:
        raise ConfigError(
            f"mode {name}: '{value}' is not next, prev or one of {', '.join(str(v) for v in modes[name].values)}",
            file,
            line_no,
            path,
        )
