"""Temperatures: targets with enforced limits, readings, and waiting for a temperature (alarm)."""

import time
from collections.abc import Callable
from typing import Any

from octopanel.actions.gcode import send
from octopanel.actions.invoke import Context, Result, dump
from octopanel.actions.job import TIMEOUT
from octopanel.actions.registry import Action, Param, Registry
from octopanel.actions.relative import BED, HOTEND, step
from octopanel.errors import PrinterError
from octopanel.values import Step, gnum, relative, show, to_bool, to_fixed, to_float

GROUP = "Temperature"
HEATERS = {"t": "tool", "tool": "tool", "b": "bed", "bed": "bed"}


def heater(text: object) -> str:
    try:
        return HEATERS[str(text).lower()]
    except KeyError:
        raise ValueError(f"expected t (tool) or b (bed), got {show(text)}") from None


def reading(ctx: Context, which: str) -> tuple[dict[str, Any], dict[str, Any]]:
    data = ctx.client.tool() if which == "tool" else ctx.client.bed()
    entry = data.get("tool0" if which == "tool" else "bed") or {}
    return data, entry


def settemp(ctx: Context, temp: float) -> Result:
    if isinstance(temp, Step):
        return step(
            ctx, HOTEND, temp, lambda t: ctx.client.tool_target({"tool0": t}), lambda t: f"tool target {t:g} °C"
        )
    ctx.client.tool_target({"tool0": temp})
    return Result(f"tool target {temp:g} °C")


def setbed(ctx: Context, temp: float) -> Result:
    if isinstance(temp, Step):
        return step(ctx, BED, temp, ctx.client.bed_target, lambda t: f"bed target {t:g} °C")
    ctx.client.bed_target(temp)
    return Result(f"bed target {temp:g} °C")


STEP_HELP = (
    "°C, or a step such as +5 or -5 counted from the current target: clamped at the limit; a step never turns "
    "the heater on or off; quick panel presses add up"
)


def raw_reader(which: str) -> Callable[[Context], Result]:
    def run(ctx: Context) -> Result:
        data, _entry = reading(ctx, which)
        return Result(dump(data), data)

    return run


def actual_reader(which: str) -> Callable[[Context], Result]:
    def run(ctx: Context) -> Result:
        data, entry = reading(ctx, which)
        actual = entry.get("actual")
        return Result("unknown" if actual is None else f"{actual:g}", data)

    return run


def wait_for_temperature(
    ctx: Context, which: str, target: float, falling: bool, timeout: float | None, interval: float
) -> float:
    """Poll until the heater reaches target (rising) or drops to it (falling); show progress on a TTY."""
    which = heater(which)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        _data, entry = reading(ctx, which)
        actual = entry.get("actual")  # None for ~2 s after connecting, until the first report
        shown = "no reading yet" if actual is None else f"{actual:.1f} °C"
        ctx.progress(f"{which}: {shown} → {target:g} °C ({'falling' if falling else 'rising'})")
        if actual is not None and ((actual <= target) if falling else (actual >= target)):
            ctx.progress_done()
            return actual
        if deadline is not None and time.monotonic() >= deadline:
            ctx.progress_done()
            raise PrinterError(f"{which} still at {shown} after {timeout:g} s (waiting for {target:g} °C)")
        ctx.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))


def alarm_legacy(words: list[str]) -> dict[str, Any] | None:
    """8control: `8alarm [d] t|b TEMP`."""
    falling = bool(words) and words[0] == "d"
    rest = words[1:] if falling else words
    if len(rest) != 2:
        return None
    return {"heater": rest[0], "target": rest[1], "falling": "true" if falling else "false"}


def alarm_action(beep: bool) -> Callable[..., Result]:
    def run(
        ctx: Context,
        heater: str,
        target: float,
        falling: bool = False,
        timeout: float | None = None,
        interval: float = 2.0,
    ) -> Result:
        actual = wait_for_temperature(ctx, heater, target, falling, timeout, interval)
        if beep:
            ctx.client.beep(500, 2000)
        return Result(f"{heater} reached {actual:.1f} °C", sent=beep)

    return run


def register(reg: Registry) -> None:
    tool_t = Param("temp", to_fixed, minval=0, maxval="max_tool_temp", help="°C")
    bed_t = Param("temp", to_fixed, minval=0, maxval="max_bed_temp", help="°C")
    tool_step = tool_t._replace(convert=relative(to_fixed), help=STEP_HELP)
    bed_step = bed_t._replace(convert=relative(to_fixed), help=STEP_HELP)
    reg.register(
        Action(
            "settemp",
            settemp,
            "set the hotend target (°C), or step it: +5, -5",
            GROUP,
            params=(tool_step,),
            steps=("temp",),
        )
    )
    reg.register(
        Action(
            "setbed", setbed, "set the bed target (°C), or step it: +2, -2", GROUP, params=(bed_step,), steps=("temp",)
        )
    )
    reg.register(
        Action(
            "settempr",
            lambda ctx, temp: send(ctx, f"M104 R S{gnum(temp)}"),
            "M104 R S: hotend target, firmware 'R' extension",
            GROUP,
            params=(tool_t,),
        )
    )
    reg.register(
        Action(
            "setbedr",
            lambda ctx, temp: send(ctx, f"M140 R S{gnum(temp)}"),
            "M140 R S: bed target, firmware 'R' extension",
            GROUP,
            params=(bed_t,),
        )
    )
    reg.register(Action("gettemp_raw", raw_reader("tool"), "print GET /api/printer/tool as JSON", GROUP))
    reg.register(Action("gettemp", actual_reader("tool"), "print the hotend's actual temperature", GROUP))
    reg.register(Action("getbed_raw", raw_reader("bed"), "print GET /api/printer/bed as JSON", GROUP))
    reg.register(Action("getbed", actual_reader("bed"), "print the bed's actual temperature", GROUP))
    params = (
        Param("heater", heater, help="t (tool) or b (bed)"),
        Param("target", to_fixed, minval=0, maxval=500),
        Param("falling", to_bool, False, help="wait for it to drop (8control: d)"),
        TIMEOUT,
        Param("interval", to_float, 2.0, 0.05, 600, "seconds between polls", flag="--interval", takes_value=True),
    )
    reg.register(
        Action(
            "alarm",
            alarm_action(True),
            "wait for [d] t|b TEMP, then beep",
            GROUP,
            params=params,
            legacy=alarm_legacy,
            slow=True,
        )
    )
    reg.register(
        Action(
            "alarmq",
            alarm_action(False),
            "wait for [d] t|b TEMP, quietly",
            GROUP,
            params=params,
            legacy=alarm_legacy,
            slow=True,
        )
    )
