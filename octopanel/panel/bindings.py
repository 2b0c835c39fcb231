"""One binding: an action line template, checked through the registry for every mode value and its gesture."""

import itertools
import string
from dataclasses import dataclass, field
from typing import Any

from octopanel import values
from octopanel.actions.registry import ANY, Call, Registry
from octopanel.errors import ConfigError, UsageError
from octopanel.panel.keymap_checks import YAML_TRAP, Mode

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


def fits(binding: Binding, state: str | None) -> bool:
    """state None means 'not fetched': only bindings valid in any state fit."""
    return binding.when == ANY if state is None else state in binding.when


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
