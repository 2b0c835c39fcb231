"""OctoPrint's state.flags → the backend-neutral PrinterState (printers/backend.py)."""

from typing import Any

from octopanel.printers.backend import PrinterState


def from_flags(flags: dict[str, Any] | None, text: str = "") -> PrinterState:
    """The printer's state, derived from OctoPrint's state.flags (never from the translated text)."""
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
    return PrinterState(name, text, tuple(sorted(on)))
