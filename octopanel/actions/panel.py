"""Panel-only actions: they change the daemon's own state (modes), never the printer's."""

from ..bounds import to_str
from ..errors import UsageError
from .context import Result
from .registry import Action, Param


def mode(ctx, name, value="next"):
    if ctx.panel is None:
        raise UsageError("mode changes only exist inside the panel daemon (octopanel run)")
    new = ctx.panel.set_mode(name, value)
    return Result(f"mode {name}: {new}", sent=False)


def register(reg):
    reg.register(Action("mode", mode, "panel: set mode NAME to next, prev or a value", "Panel",
                        params=(Param("name", to_str), Param("value", to_str, "next")), cli=False))
