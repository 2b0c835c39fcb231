"""The printer's state as octopanel names it, derived from OctoPrint's state.flags."""

from collections import namedtuple


class PrinterState(namedtuple("PrinterState", "name text flags", defaults=("", ()))):
    """The printer's state, derived from OctoPrint's state.flags (never from the translated text)."""

    __slots__ = ()  # a namedtuple, not a dataclass: `import dataclasses` costs ~5 ms of every command

    @classmethod
    def from_flags(cls, flags, text=""):
        on = {k for k, v in (flags or {}).items() if v}
        if not on & {"operational", "printing", "paused", "pausing", "cancelling"}:
            name = "error" if "error" in on else "disconnected"
        else:
            # Order matters: a pausing or cancelling printer also reports 'printing'.
            for flag in ("cancelling", "pausing", "resuming", "finishing", "paused", "printing"):
                if flag in on:
                    name = flag
                    break
            else:
                name = "idle"
        return cls(name, text, tuple(sorted(on)))
