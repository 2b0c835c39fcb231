"""The one bounds vocabulary: typed values with min/max, shared by config and action parameters."""

import reprlib
from collections.abc import Callable, Iterable
from typing import Any

# Error messages quote what they got, but never a whole (maybe aliased, maybe huge) YAML structure.
_SHORT = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 3, 3
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 60, 60, 40


def show(value: object) -> str:
    """A short repr for messages."""
    return _SHORT.repr(value)


def reject_structures(text: object, expected: str) -> None:
    if isinstance(text, (list, dict, tuple, set)):
        raise ValueError(f"expected {expected}, got a {type(text).__name__}")


def check_range(value: float, minval: float | None = None, maxval: float | None = None) -> str | None:
    """Return an error text if value is outside [minval, maxval], else None."""
    if minval is not None and value < minval:
        return f"{fmt(value)} is below the minimum {fmt(minval)}"
    if maxval is not None and value > maxval:
        return f"{fmt(value)} is above the maximum {fmt(maxval)}"
    return None


def fmt(value: object) -> str:
    """Format a number without a useless '.0' (a Step keeps its sign: '+5')."""
    if isinstance(value, Step):
        return ("+" if value >= 0 else "-") + fmt(abs(float(value)))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


GCODE_DECIMALS = 3  # 0.001 mm, 0.001 °C: finer than any printer moves or heats


def gnum(value: float | str, decimals: int = GCODE_DECIMALS) -> str:
    """A number as firmware must read it: fixed notation, at most `decimals` decimals, never an exponent,
    nan or inf ('1e-05' would read as 1 followed by an E word). ValueError if it is not finite."""
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {value!r}")
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def to_float(text: Any) -> float:
    reject_structures(text, "a number")
    if isinstance(text, bool):
        raise ValueError(f"expected a number, got {show(text)}")
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too big for a float
        raise ValueError(f"expected a number, got {show(text)}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {show(text)}")
    return value


def to_fixed(text: Any, decimals: int = GCODE_DECIMALS) -> float:
    """A distance or temperature as it will be sent: to_float rounded to `decimals` places (0.001 mm), so
    that what is checked is what the printer gets. A nonzero value that rounds to 0 is an error, not a
    silent no-op (0 itself is a valid value: `jog x=0`)."""
    value = to_float(text)
    rounded = round(value, decimals) + 0.0  # + 0.0: -0.0 becomes 0.0
    if rounded == 0 and value != 0:
        step = gnum(10**-decimals)
        raise ValueError(
            f"{show(text)} rounds to 0 (numbers are sent to the nearest {step}): give 0 or a size of at least {step}"
        )
    return rounded


class Step(float):
    """A signed relative step (`+5`, `-0.02`): counted from the current value when it runs, not set as it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Step({fmt(self)})"


def relative(convert: Callable[[Any], Any], always: bool = False) -> Callable[[Any], Any]:
    """A converter reading `+N` or `-N` as a Step of convert(N) and anything else as convert(value); with
    `always`, a bare number is a Step too (a babystep is relative by nature). A step of 0 is an error."""

    def to_step(text: Any) -> Any:
        signed = isinstance(text, str) and text.strip()[:1] in ("+", "-")
        if not (signed or always):
            return convert(text)
        reject_structures(text, "a signed step such as +5 or -5")
        raw = str(text).strip()
        sign = -1.0 if raw.startswith("-") else 1.0
        digits = raw[1:] if signed else raw
        if not digits[:1].isdigit() and not (digits[:1] == "." and digits[1:2].isdigit()):
            raise ValueError(f"expected a number or a signed step such as +5 or -5, got {show(text)}")
        try:
            size = float(convert(digits))
        except ValueError as exc:
            raise ValueError(f"{exc} (in the step {show(text)})") from None
        if size == 0:
            raise ValueError(f"a step of {show(text)} changes nothing; nothing sent")
        return Step(sign * size)

    to_step.__name__ = f"relative_{getattr(convert, '__name__', 'value')}"
    return to_step


def to_int(text: Any) -> int:
    reject_structures(text, "a whole number")
    if isinstance(text, bool):
        raise ValueError(f"expected a whole number, got {show(text)}")
    if isinstance(text, int):
        return text
    try:
        return int(str(text), 10)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is not None and value.is_integer():
            return int(value)
        raise ValueError(f"expected a whole number, got {show(text)}") from None


def to_bool(text: object) -> bool:
    reject_structures(text, "true or false")
    if isinstance(text, bool):
        return text
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {show(text)}")


def to_str(text: object) -> str:
    if text is None:
        raise ValueError("expected a value, got nothing")
    if isinstance(text, (dict, list)):
        raise ValueError(f"expected text, got {type(text).__name__}")
    return str(text)


def suggest(word: object, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    import difflib  # only on an error: it costs ~1 ms of every command otherwise

    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
