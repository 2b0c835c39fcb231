"""YAML loading that remembers the line of every mapping key, for file:line error messages."""

import os
from typing import Any

import yaml

from octopanel.errors import ConfigError


class LineDict(dict):
    """A dict from YAML; `.lines[key]` is the 1-based line of each key, `.line` of the mapping."""

    lines: dict[Any, int]
    line: int


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.lines = {}
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise ConfigError("a mapping key must be plain text", None, key_node.start_mark.line + 1)
        if key in result:
            raise ConfigError(f"duplicate key '{key}'", None, key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load(text: str, filename: str) -> Any:
    """Parse YAML text; syntax errors become ConfigError(filename, line)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except ConfigError as exc:
        raise ConfigError(exc.message, filename, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", filename, line) from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: int() over 4300 digits, a bad date
        raise ConfigError(f"invalid YAML: {exc}", filename) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", filename) from None


def load_file(path: "str | os.PathLike[str]") -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", str(path)) from None
    return load(text, str(path))


def line_of(mapping: object, key: object) -> int | None:
    """The line of `key` in a LineDict (or of the mapping itself), None when unknown."""
    lines = getattr(mapping, "lines", {})
    return lines.get(key, getattr(mapping, "line", None))
