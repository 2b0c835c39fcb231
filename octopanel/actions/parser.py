"""Reading an action's words: key=value, flags, positional and 8control's words, checked; its usage line."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from octopanel import values
from octopanel.errors import UsageError

if TYPE_CHECKING:
    from octopanel.actions.registry import Action

REQUIRED = object()  # a Param's default when it has none: the word must be given


def parse_args(action: "Action", words: Sequence[str], limits: dict[str, float]) -> dict[str, Any]:
    by_name = {p.name: p for p in action.params}
    by_flag = {p.flag: p for p in action.params if p.flag}
    free_text = any(p.rest for p in action.params)  # G-code and messages: '=' and leading dashes are text
    raw: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            positional.extend(words[i:])
            break
        key, has_value, value = word.partition("=")
        if key in by_flag and (has_value or word in by_flag):
            param = by_flag[key]
            if param.takes_value:
                if has_value:
                    raw[param.name] = value
                elif i >= len(words):
                    raise UsageError(f"{action.name}: {word} needs a value")
                else:
                    raw[param.name] = words[i]
                    i += 1
            elif has_value:
                raise UsageError(f"{action.name}: {key} takes no value")
            else:
                raw[param.name] = True
            continue
        if has_value and key in by_name and not (free_text and positional):
            if key in raw:
                raise UsageError(f"{action.name}: {key} given twice")
            raw[key] = value
            continue
        if has_value and key.isidentifier() and key.islower() and not free_text:
            raise UsageError(f"{action.name}: unknown parameter '{key}'{values.suggest(key, by_name)}")
        if word.startswith("--") and len(word) > 2 and not word[2:3].isdigit() and not free_text:
            raise UsageError(f"{action.name}: unknown option '{word}'{values.suggest(word, by_flag)}")
        positional.append(word)
    if positional:
        mapped = action.legacy(positional) if action.legacy else default_positional(action, positional)
        if mapped is None:
            raise UsageError(f"{action.name}: cannot read arguments {' '.join(positional)!r}; usage: {usage(action)}")
        for key, value in mapped.items():
            if key in raw:
                raise UsageError(f"{action.name}: {key} given twice")
            raw[key] = value
    args: dict[str, Any] = {}
    for param in action.params:
        if param.name in raw:
            try:
                args[param.name] = param.parse(raw[param.name], limits)
            except UsageError as exc:
                raise UsageError(f"{action.name}: {exc}") from None
        elif param.default is REQUIRED:
            raise UsageError(f"{action.name}: missing {param.name}; usage: {usage(action)}")
        elif param.default is not None:
            args[param.name] = param.default
    problem = action.check(args) if action.check else None
    if problem:
        raise UsageError(f"{action.name}: {problem}; usage: {usage(action)}")
    return args


def default_positional(action: "Action", words: Sequence[str]) -> dict[str, str] | None:
    """Map words to the positional (non-flag) parameters in order; a `rest` parameter takes the remainder."""
    params = [p for p in action.params if not p.flag]
    mapped: dict[str, str] = {}
    for index, param in enumerate(params):
        if index >= len(words):
            break
        if param.rest:
            mapped[param.name] = " ".join(words[index:])
            return mapped
        mapped[param.name] = words[index]
    if len(words) > len(params):
        return None
    return mapped


def usage(action: "Action") -> str:
    parts = [action.command_names[0] if action.commands else action.name]
    for p in action.params:
        if p.flag:
            text = f"{p.flag} {p.name.upper()}" if p.takes_value else p.flag
        else:
            text = f"{p.name.upper()}{'…' if p.rest else ''}"
        parts.append(f"[{text}]" if p.default is not REQUIRED else text)
    return " ".join(parts)
