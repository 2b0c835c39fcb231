"""Connection and system commands: connect, disconnect, reconnect, custom actions, power."""

from typing import Any

from octopanel.actions.invoke import Context, Result
from octopanel.actions.registry import OCTOPRINT_ONLY, Action, Param, Registry
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


def restart_firmware(ctx: Context) -> Result:
    ctx.client.firmware_restart()
    return Result("firmware restart sent: Klipper reconnects to its micro-controllers (the axes need homing)")


def emergency_stop(ctx: Context) -> Result:
    ctx.client.emergency_stop()
    return Result("emergency stop sent: the printer is halted; 8reset brings it back")


SERIAL = "Klipper's host keeps its own connection to the printer's board (8reset restarts it)"
SYSTEM = "Moonraker has no custom system commands (use its power devices or a Klipper macro)"


def register(reg: Registry) -> None:
    octoprint_only: dict[str, Any] = {"backends": OCTOPRINT_ONLY}
    reg.register(
        Action("connect", connect, "connect OctoPrint to the printer", GROUP_CONN, not_there=SERIAL, **octoprint_only)
    )
    reg.register(
        Action(
            "disconnect",
            disconnect,
            "disconnect OctoPrint from the printer",
            GROUP_CONN,
            dangerous=True,
            not_there=SERIAL,
            **octoprint_only,
        )
    )
    reg.register(
        Action(
            "reconnect",
            reconnect,
            "disconnect, run system command 'reset', connect (Klipper: firmware restart)",
            GROUP_CONN,
            dangerous=True,
            variants=(("moonraker", restart_firmware),),
        )
    )
    reg.register(
        Action(
            "estop",
            emergency_stop,
            "emergency stop: halt the printer at once (M112; Klipper: emergency_stop)",
            GROUP_SYS,
            dangerous=True,
        )
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
            not_there=SYSTEM,
            **octoprint_only,
        )
    )
    reg.register(
        Action(
            "listcmds",
            listcmds,
            "list OctoPrint's system commands",
            GROUP_SYS,
            commands=("ListCmds",),
            not_there=SYSTEM,
            **octoprint_only,
        )
    )
    reg.register(
        Action(
            "reset",
            reset,
            "run the custom system command 'reset' (Klipper: firmware restart)",
            GROUP_SYS,
            dangerous=True,
            variants=(("moonraker", restart_firmware),),
        )
    )
    power = "Klipper has no M80/M81: switch the supply with a Moonraker power device"
    reg.register(
        Action(
            "on",
            power_on,
            "run 'reset', then M80 (power supply on)",
            GROUP_SYS,
            dangerous=True,
            not_there=power,
            **octoprint_only,
        )
    )
    reg.register(
        Action("off", power_off, "M81: power supply off", GROUP_SYS, dangerous=True, not_there=power, **octoprint_only)
    )
