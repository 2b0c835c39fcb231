"""Moving the head and the filament: home, jog, extrude, eject; speed and flow factors."""

from decimal import Decimal
from typing import Any

from octopanel.actions.invoke import Context, Result
from octopanel.actions.registry import MOTION_OK, Action, Param, Registry
from octopanel.actions.relative import FEEDRATE, FLOWRATE, step
from octopanel.errors import SafetyError
from octopanel.gcode.policy import BABYSTEP_MM
from octopanel.values import Step, fmt, gnum, relative, to_bool, to_fixed, to_float, to_int

GROUP = "Motion"
GROUP_EX = "Extrusion"
GROUP_FACTOR = "Speed and flow"
FORCE = Param("force", to_bool, False, flag="--force", help="extrude even below min_extrude_temp")


def jog_legacy(words: list[str]) -> dict[str, Any] | None:
    """8control: `8jog Z` or `8jog X Y Z`."""
    if len(words) == 1:
        return {"z": words[0]}
    if len(words) == 3:
        return dict(zip("xyz", words))
    return None


def jog_signs(ctx: Context) -> dict[str, int]:
    """Per-axis sign: follow the profile's inverted axes (as the web UI does), flip all, or none."""
    mode = ctx.settings.jog_direction
    if mode == "8control":
        return {"x": -1, "y": -1, "z": -1}
    if mode == "raw":
        return {"x": 1, "y": 1, "z": 1}
    axes = ctx.client.profile().get("axes") or {}
    return {a: -1 if (axes.get(a) or {}).get("inverted") else 1 for a in "xyz"}


def jog(
    ctx: Context, x: float | None = None, y: float | None = None, z: float | None = None, speed: int | None = None
) -> Result:
    moves = {a: v for a, v in (("x", x), ("y", y), ("z", z)) if v is not None}
    signs = jog_signs(ctx)
    sent = {a: v * signs[a] for a, v in moves.items()}
    ctx.client.jog(speed=speed, **sent)
    return Result("jogged " + " ".join(f"{a}={v:g}" for a, v in moves.items()))


def home(ctx: Context) -> Result:
    ctx.client.home()
    return Result("homed x y z")


def check_hot(ctx: Context, force: bool) -> None:
    """Refuse cold extrusion ourselves: neither OctoPrint nor every firmware does."""
    if force:
        return
    tool = ctx.client.tool().get("tool0") or {}
    actual = tool.get("actual")
    if tool.get("can_extrude") is False:  # Klipper's own judgement, against its min_extrude_temp
        raise SafetyError(
            f"the printer says the hotend ({'unknown' if actual is None else f'{actual:g} °C'}) is too cold "
            "to extrude (Klipper's min_extrude_temp): heat it first (8settemp); nothing sent"
        )
    minimum = ctx.settings.min_extrude_temp
    if actual is None or actual < minimum:
        shown = "unknown" if actual is None else f"{actual:g} °C"
        raise SafetyError(
            f"the hotend is at {shown}, below min_extrude_temp {minimum:g} °C: heat it first "
            "(8settemp) or add --force; nothing sent"
        )


def extrude(ctx: Context, amount: float, speed: int | None = None, force: bool = False) -> Result:
    check_hot(ctx, force)
    ctx.client.extrude(amount, speed)
    return Result(f"{'extruded' if amount > 0 else 'retracted'} {abs(amount):g} mm")


def fex(ctx: Context, amount: float, speed: int = 2000, force: bool = False) -> Result:
    check_hot(ctx, force)
    lines = ["G91", f"G1 E{gnum(amount)} F{speed}", "G90"]
    ctx.client.gcode(lines)
    return Result(" | ".join(lines) + " sent")


def eject(ctx: Context, temp: float | None = None, force: bool = False, timeout: float = 600.0) -> Result:
    from octopanel.actions.temps import wait_for_temperature

    if temp is not None and temp < ctx.settings.min_extrude_temp and not force:
        raise SafetyError(
            f"eject -t {temp:g}: below min_extrude_temp {ctx.settings.min_extrude_temp:g} °C, "
            "the filament could not move; nothing sent"
        )
    if temp is not None:
        ctx.client.tool_target({"tool0": temp})
        wait_for_temperature(ctx, "t", temp, falling=False, timeout=timeout, interval=2.0)
    check_hot(ctx, force)
    # Push the tip, then pull the filament out of an 800 mm bowden tube (8control's numbers).
    ctx.client.gcode(["G91", "G1 E3 F700", "G1 E-800 F2500", "G90"])
    if temp is not None:
        ctx.client.tool_target({"tool0": 0})
    return Result("filament ejected" + (", hotend off" if temp is not None else ""))


def feedrate(ctx: Context, percent: int) -> Result:
    if isinstance(percent, Step):
        return step(ctx, FEEDRATE, percent, ctx.client.feedrate, lambda p: f"feed rate {p} %")
    ctx.client.feedrate(percent)
    return Result(f"feed rate {percent} %")


def flowrate(ctx: Context, percent: int) -> Result:
    if isinstance(percent, Step):
        return step(ctx, FLOWRATE, percent, ctx.client.flowrate, lambda p: f"flow rate {p} %")
    ctx.client.flowrate(percent)
    return Result(f"flow rate {percent} %")


def babystep(ctx: Context, z: float, line: str = "M290 Z{}") -> Result:
    """M290 Z: a merged run of presses goes out whole, in lines of at most BABYSTEP_MM each (policy's cap)."""
    left, cap, lines = Decimal(repr(float(z))), Decimal(repr(BABYSTEP_MM)), []
    while left:
        part = max(-cap, min(cap, left))
        lines.append(line.format(gnum(str(part))))
        left -= part
    ctx.client.gcode(lines)
    split = f" ({len(lines)} lines of at most {BABYSTEP_MM:g} mm)" if len(lines) > 1 else ""
    return Result(f"babystepped z {fmt(z)} mm{split}")


def babystep_klipper(ctx: Context, z: float) -> Result:
    """Klipper has no M290: its babystep is a G-code offset applied with a move, as Mainsail and Fluidd send."""
    return babystep(ctx, z, "SET_GCODE_OFFSET Z_ADJUST={} MOVE=1")


FACTOR_HELP = (
    "%, or a step such as +10 or -10 counted from the factor as octopanel's daemon last set it (OctoPrint "
    "does not report it: set it as a number first), clamped at the limits; quick presses add up"
)

BABY_HELP = "mm, + up (away from the bed); quick panel presses add up, sent in M290 lines of at most 0.2 mm"


def register(reg: Registry) -> None:
    axis = lambda a: Param(a, to_fixed, None, "-max_jog", "max_jog", f"{a.upper()} distance (mm)")  # noqa: E731
    reg.register(Action("home", home, "home x, y and z", GROUP, states=MOTION_OK, backend_refuses=True))
    reg.register(
        Action(
            "jog",
            jog,
            "move the head by X Y Z mm (one number: Z only)",
            GROUP,
            states=MOTION_OK,
            backend_refuses=True,
            params=(axis("x"), axis("y"), axis("z"), Param("speed", to_int, None, 1, 20000, "mm/min")),
            legacy=jog_legacy,
            moves=(("x", "x"), ("y", "y"), ("z", "z")),
            check=lambda a: None if {"x", "y", "z"} & set(a) else "give at least one of x, y, z",
        )
    )
    amount = Param("amount", to_fixed, minval="-max_extrude", maxval="max_extrude", help="mm; negative retracts")
    reg.register(
        Action(
            "ex",
            extrude,
            "extrude MM of filament (negative retracts)",
            GROUP_EX,
            states=MOTION_OK,
            params=(amount, Param("speed", to_int, None, 1, 20000, "mm/min"), FORCE),
            commands=("ex", "extrude"),
            moves=(("amount", "e"),),
            check=lambda a: "amount must not be 0" if a["amount"] == 0 else None,
        )
    )
    reg.register(
        Action(
            "fex",
            fex,
            "extrude MM at SPEED mm/min with raw G-code (default 2000)",
            GROUP_EX,
            states=MOTION_OK,
            params=(amount, Param("speed", to_int, 2000, 1, 20000), FORCE),
        )
    )
    reg.register(
        Action(
            "eject",
            eject,
            "pull the filament out (-t TEMP: heat first, then turn off)",
            GROUP_EX,
            states=MOTION_OK,
            params=(
                Param("temp", to_fixed, None, 0, "max_tool_temp", flag="-t", takes_value=True),
                FORCE,
                Param("timeout", to_float, 600.0, 1, 7200, "give up heating after", flag="--timeout", takes_value=True),
            ),
            slow=True,
        )
    )
    factor = Param("percent", relative(to_int), minval="min_factor", maxval="max_factor", help=FACTOR_HELP)
    reg.register(
        Action(
            "speed",
            feedrate,
            "feed rate override in % (M220), or step it: +10, -10",
            GROUP_FACTOR,
            params=(factor,),
            steps=("percent",),
        )
    )
    reg.register(
        Action(
            "feed",
            flowrate,
            "flow rate override in % (M221), or step it: +5, -5",
            GROUP_FACTOR,
            params=(factor,),
            steps=("percent",),
        )
    )
    reg.register(
        Action(
            "babystep",
            babystep,
            f"nudge Z by MM now, even while printing (M290, at most {BABYSTEP_MM:g} mm)",
            GROUP,
            params=(
                Param("z", relative(to_fixed, always=True), minval=-BABYSTEP_MM, maxval=BABYSTEP_MM, help=BABY_HELP),
            ),
            steps=("z",),
            variants=(("moonraker", babystep_klipper),),
        )
    )
