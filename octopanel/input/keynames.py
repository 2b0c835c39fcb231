"""Key names: one canonical name per key code, and every evdev alias accepted."""

import functools
import re

from evdev import ecodes

# Names that mark the start of a code range rather than name a key; an alias is preferred.
_RANGE_MARKERS = frozenset(
    {
        "KEY_MIN_INTERESTING",
        "BTN_MISC",
        "BTN_MOUSE",
        "BTN_JOYSTICK",
        "BTN_GAMEPAD",
        "BTN_DIGI",
        "BTN_WHEEL",
        "BTN_TRIGGER_HAPPY",
    }
)
# A code evdev has no name for still gets one, so that it can be bound and logged.
_NUMERIC = re.compile(r"KEY_CODE_(\d+)")


@functools.cache
def _tables() -> tuple[dict[int, str], dict[str, int]]:
    """(code -> canonical name, name -> code), built once from evdev's tables."""
    names: dict[int, str] = {}
    codes: dict[str, int] = {}
    for table in (ecodes.KEY, ecodes.BTN):
        for code, entry in table.items():
            aliases = [entry] if isinstance(entry, str) else list(entry)
            aliases = [a for a in aliases if a.startswith(("KEY_", "BTN_")) and not a.endswith(("_MAX", "_CNT"))]
            if not aliases:
                continue
            # Sorted, so that evdev 1.6 (lists) and 2.0 (tuples) pick the same name.
            preferred = sorted(a for a in aliases if a not in _RANGE_MARKERS) or sorted(aliases)
            names.setdefault(code, preferred[0])
            for alias in aliases:
                codes[alias] = code
    return names, codes


def key_name(code: int) -> str:
    """The canonical name of an EV_KEY code, e.g. 256 -> 'BTN_0' (alias 'BTN_MISC')."""
    return _tables()[0].get(code, f"KEY_CODE_{code}")


def key_code(name: str) -> int:
    """The code for any alias of a key name; KeyError if no key has that name."""
    code = _tables()[1].get(name)
    if code is not None:
        return code
    match = _NUMERIC.fullmatch(name)
    if match and int(match.group(1)) <= ecodes.KEY_MAX:
        return int(match.group(1))
    raise KeyError(name)


def all_key_names() -> list[str]:
    """Every accepted key name, aliases included, sorted: the vocabulary for 'did you mean' hints."""
    return sorted(_tables()[1])


def canonical(name: str) -> str:
    """The canonical spelling of any alias, e.g. 'BTN_MISC' -> 'BTN_0'; KeyError if unknown."""
    return key_name(key_code(name))
