"""The one bounds vocabulary: typed values with min/max, shared by config and action parameters."""

import difflib


def check_range(value, minval=None, maxval=None):
    """Return an error text if value is outside [minval, maxval], else None."""
    if minval is not None and value < minval:
        return f"{fmt(value)} is below the minimum {fmt(minval)}"
    if maxval is not None and value > maxval:
        return f"{fmt(value)} is above the maximum {fmt(maxval)}"
    return None


def fmt(value):
    """Format a number without a useless '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_float(text):
    if isinstance(text, bool):
        raise ValueError(f"expected a number, got {text!r}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def to_int(text):
    if isinstance(text, bool):
        raise ValueError(f"expected a whole number, got {text!r}")
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
        raise ValueError(f"expected a whole number, got {text!r}") from None


def to_bool(text):
    if isinstance(text, bool):
        return text
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def to_str(text):
    if text is None:
        raise ValueError("expected a value, got nothing")
    if isinstance(text, (dict, list)):
        raise ValueError(f"expected text, got {type(text).__name__}")
    return str(text)


def suggest(word, choices):
    """' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
