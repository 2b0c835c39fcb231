"""Panel-only actions: they change the daemon's own state (modes), never the printer's."""

from octopanel.actions.invoke import Context, Result
from octopanel.actions.registry import Action, Param, Registry
from octopanel.errors import UsageError
from octopanel.values import suggest, to_str


def mode(ctx: Context, name: str, value: str = "next") -> Result:
    if ctx.panel is None:
        raise UsageError("mode changes only exist inside the panel daemon (octopanel run)")
    values = ctx.panel.values.get(name)
    if values is None:
        raise UsageError(
            f"mode: unknown mode '{name}'{suggest(name, ctx.panel.values)}"
            + ("" if ctx.panel.values else " (the keymap defines no modes)")
        )
    if value not in ("next", "prev") and value not in [str(v) for v in values]:
        raise UsageError(f"mode {name}: '{value}' is not next, prev or one of {', '.join(map(str, values))}")
    new = ctx.panel.set_mode(name, value)
    return Result(f"mode {name}: {new}", sent=False)


def register(reg: Registry) -> None:
    reg.register(
        Action(
            "mode",
            mode,
            "panel: set mode NAME to next, prev or a value",
            "Panel",
            params=(Param("name", to_str), Param("value", to_str, "next")),
            cli=False,
            panel_mode=True,
        )
    )
