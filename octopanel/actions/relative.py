"""Relative steps (`settemp +5`, `speed -10`): counted from the printer's current target or factor, clamped.

A step that would pass a limit (max_tool_temp, max_bed_temp, min_factor..max_factor) is clamped to it and the
output says so; one that cannot move at all (already at the limit) is refused. A step needs a value to count
from: an unknown one is refused rather than guessed, and a step never turns a heater on or off (nothing is sent)."""

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from octopanel.errors import SafetyError
from octopanel.values import Step, fmt

if TYPE_CHECKING:
    from octopanel.actions.invoke import Context, Result


class Knob(NamedTuple):
    """What a step turns: its key in Backend.tuning(), its words, unit and limits (settings names)."""

    action: str
    key: str
    what: str
    unit: str
    low: str | float
    high: str
    example: str  # an absolute value to suggest when there is nothing to count from
    heater: bool = False  # a target of 0 is "off": a step nudges a set target, never switches it on or off


HOTEND = Knob("settemp", "tool", "hotend target", "°C", 0.0, "max_tool_temp", "200", heater=True)
BED = Knob("setbed", "bed", "bed target", "°C", 0.0, "max_bed_temp", "60", heater=True)
FEEDRATE = Knob("speed", "feedrate", "feed rate factor", "%", "min_factor", "max_factor", "100")
FLOWRATE = Knob("feed", "flowrate", "flow factor", "%", "min_factor", "max_factor", "100")

UNKNOWN_FACTOR = (
    "OctoPrint does not report it; octopanel knows it only once its daemon has set it, and forgets it when "
    "the printer disconnects"
)


def limit(bound: str | float, limits: Mapping[str, float]) -> float:
    return float(limits[bound]) if isinstance(bound, str) else float(bound)


def step(
    ctx: "Context", knob: Knob, delta: float, setter: Callable[[float], object], absolute: Callable[[float], str]
) -> "Result":
    """Count `delta` from the printer's current value, clamp, set it with setter(value); the Result text
    comes from absolute(value) plus how it was reached. SafetyError (nothing sent) when it cannot count."""
    from octopanel.actions.invoke import Result

    tuning = ctx.client.tuning()
    current = tuning.get(knob.key)
    shown = f"{knob.action} {fmt(delta)} refused"
    if current is None:
        why = UNKNOWN_FACTOR if not knob.heater else "the printer has not reported it yet"
        raise SafetyError(
            f"{shown}: the {knob.what} is unknown ({why}); set it as a number first "
            f"(e.g. `{knob.action} {knob.example}`); nothing sent"
        )
    if knob.heater and current == 0:
        raise SafetyError(
            f"{shown}: the {knob.what} is 0 (heater off): a step nudges a set target and never turns a "
            "heater on; set a target first; nothing sent"
        )
    low, high = limit(knob.low, ctx.limits), limit(knob.high, ctx.limits)
    wanted = round(current + float(delta), 3) + 0.0
    if knob.heater and wanted <= 0:
        raise SafetyError(
            f"{shown}: the {knob.what} is {fmt(current)} {knob.unit}: the step would turn the heater off, "
            f"which a step never does (`{knob.action} 0` does); nothing sent"
        )
    value = min(max(wanted, low), high)
    bound_name = knob.high if delta > 0 else knob.low
    bound_text = bound_name if isinstance(bound_name, str) else "the minimum"
    if (value - current) * delta <= 0:  # at the limit already (or past it, set elsewhere): never the wrong way
        where = "at" if value == current else ("above" if delta > 0 else "below")
        raise SafetyError(
            f"{shown}: the {knob.what} is already {fmt(current)} {knob.unit}, {where} {bound_text} "
            f"{fmt(limit(bound_name, ctx.limits))} {knob.unit}; nothing sent"
        )
    if knob.unit == "%":
        value = int(round(value))
    setter(value)
    source = " as octopanel set it" if knob.key in tuning.get("remembered", ()) else ""
    how = f"was {fmt(current)} {knob.unit}{source}, {fmt(delta)}"
    if value != wanted:
        how += f" clamped to {fmt(Step(round(value - current, 3)))} by {bound_text} {fmt(value)} {knob.unit}"
    data: dict[str, Any] = {knob.key: value, "was": current, "step": float(delta), "clamped": value != wanted}
    return Result(f"{absolute(value)} ({how})", data)
