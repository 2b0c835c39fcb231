"""Connection and system commands: connect, disconnect, reconnect, custom actions, power."""

from octopanel.actions.invoke import Context, Result
from octopanel.actions.registry import Action, Param, Registry
from octopanel.errors import BadRequest, NotFound, ServerError
from octopanel.printers.octoprint.urlpath import segment

GROUP_CONN = "Connection"
GROUP_SYS = "System and power"


def connect(ctx: Context) -> Result:
    ctx.client.connect()
    return Result("connect sent")


def disconnect(ctx: Context) -> Result:
    ctx.client.disconnect()
    return Result("disconnect sent")


def try_reset(ctx: Context, then: str) -> str:
    """Run the custom system command 'reset'; a missing or failing one is reported, not fatal."""
    try:
        ctx.client.system_command("reset")
    except NotFound:
        return f" (no custom system command 'reset' is defined: skipped it, {then} anyway)"
    except (BadRequest, ServerError) as exc:
        return f" (the system command 'reset' failed: {exc}; {then} anyway)"
    return ""


def reconnect(ctx: Context) -> Result:
    ctx.client.disconnect()
    ctx.sleep(0.2)
    note = try_reset(ctx, "connected")
    ctx.sleep(0.5)  # 8control's pause: lets a reset board come back before connecting
    ctx.client.connect()
    return Result("reconnected" + note)


def system(ctx: Context, name: str) -> Result:
    ctx.client.system_command(name)
    return Result(f"system command '{name}' run")


def listcmds(ctx: Context) -> Result:
    data = ctx.client.system_commands()
    lines = [f"{source}/{c.get('action')}: {c.get('name', '')}" for source, cmds in data.items() for c in cmds]
    return Result("\n".join(lines) if lines else "(no system commands)", data)


def reset(ctx: Context) -> Result:
    return system(ctx, "reset")


def power_on(ctx: Context) -> Result:
    note = try_reset(ctx, "sent M80")
    ctx.client.gcode(["M80"])
    return Result(("M80 sent" + note) if note else "reset run, M80 sent")


def power_off(ctx: Context) -> Result:
    ctx.client.gcode(["M81"])
    return Result("M81 sent")


def register(reg: Registry) -> None:
    reg.register(Action("connect", connect, "connect OctoPrint to the printer", GROUP_CONN))
    reg.register(Action("disconnect", disconnect, "disconnect OctoPrint from the printer", GROUP_CONN, dangerous=True))
    reg.register(
        Action("reconnect", reconnect, "disconnect, run system command 'reset', connect", GROUP_CONN, dangerous=True)
    )
    reg.register(
        Action(
            "system",
            system,
            "run OctoPrint custom system command NAME",
            GROUP_SYS,
            params=(Param("name", segment, help="the action's name, see 8ListCmds"),),
            commands=("run",),
            dangerous=True,
        )
    )
    reg.register(Action("listcmds", listcmds, "list OctoPrint's system commands", GROUP_SYS, commands=("ListCmds",)))
    reg.register(Action("reset", reset, "run the custom system command 'reset'", GROUP_SYS, dangerous=True))
    reg.register(Action("on", power_on, "run 'reset', then M80 (power supply on)", GROUP_SYS, dangerous=True))
    reg.register(Action("off", power_off, "M81: power supply off", GROUP_SYS, dangerous=True))
