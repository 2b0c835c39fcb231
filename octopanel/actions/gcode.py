"""Raw G-code and the small commands that are one G-code line: messages, beeps, fans, servos, steppers."""

from typing import Any

from octopanel.actions.invoke import Context, Result, gcode_line, gcode_lines
from octopanel.actions.registry import MOTION_OK, OCTOPRINT_ONLY, Action, Param, Registry
from octopanel.errors import UsageError
from octopanel.gcode import parse, policy
from octopanel.values import gnum, show, to_bool, to_fixed, to_int

GROUP = "G-code"
GROUP_FAN = "Fans and servos"


def send(ctx: Context, *lines: str) -> Result:
    ctx.client.gcode(lines)
    return Result(" | ".join(lines) + " sent")


def beep(ctx: Context, ms: int, hz: int) -> Result:
    ctx.client.beep(ms, hz)
    return Result(f"M300 P{ms} S{hz} sent")


def hotend_temp(ctx: Context) -> float | None:
    return (ctx.client.tool().get("tool0") or {}).get("actual")


def shouted(line: str) -> str:
    """8control upper-cases a raw line; a Klipper command keeps its values as typed (Klipper reads fan, heater
    and LED names case-sensitively; gcode.parse upper-cases its name and keys)."""
    return line if parse.names_klipper_command(line) else line.upper()


def send_raw(ctx: Context, lines: list[str], force: bool = False) -> Result:
    """Raw G-code, judged line by line as the firmware reads it (gcode.policy): the allow list while busy,
    caps and protections always, extrusion only when hot; --force lifts only the busy and cold rules."""
    judged = policy.check(
        lines,
        ctx.limits,
        lambda: ctx.client.state().name,
        lambda: hotend_temp(ctx),
        force,
        klipper_commands=ctx.client.kind == "moonraker",
        klipper_also_allowed=ctx.settings.klipper_allowed_while_printing or (),
    )
    if not judged:
        raise UsageError("no G-code to send: only comments or empty lines; nothing sent")
    return send(ctx, *judged)


def message_text(text: object) -> str:
    """Display text: one line, may be empty (a bare M117 clears the display)."""
    text = str(text).strip()
    return gcode_line(text) if text else ""


def fan_value(text: object) -> int:
    lowered = str(text).lower()
    if lowered == "on" or text is True:
        return 255
    if lowered == "off" or text is False:
        return 0
    try:
        return to_int(text)
    except ValueError:
        raise ValueError(f"expected on, off or 0..255, got {show(text)}") from None


def register(reg: Registry) -> None:
    def simple(name: str, code: str, help_: str, commands: tuple[str, ...] = (), **kw: Any) -> None:
        reg.register(Action(name, lambda ctx: send(ctx, code), help_, GROUP, commands=commands, **kw))

    force = Param("force", to_bool, False, flag="--force", help="allow any G-code while printing, and cold extrusion")
    reg.register(
        Action(
            "g",
            lambda ctx, code, force=False: send_raw(ctx, [shouted(code)], force),
            "send one G-code line (upper-cased), or on Klipper one of its commands or macros",
            GROUP,
            params=(Param("code", gcode_line, rest=True), force),
            commands=("g", "gcode"),
            danger=lambda a: policy.dangerous([a["code"]]),
        )
    )
    cold = Param("force", to_bool, False, flag="--force", help="allow extrusion with a cold hotend")
    for axis_cmd in ("G0", "G1"):
        reg.register(
            Action(
                axis_cmd.lower(),
                lambda ctx, coords, force=False, c=axis_cmd: send_raw(ctx, [f"{c} {coords.upper()}"], force),
                f"send {axis_cmd} COORDS, judged like 8g (refused while printing)",
                GROUP,
                params=(Param("coords", gcode_line, rest=True), cold),
                states=MOTION_OK,
                danger=lambda a, c=axis_cmd: policy.dangerous([f"{c} {a['coords']}"]),  # type: ignore[misc]  # a lambda with a default
            )
        )
    reg.register(
        Action(
            "gmulti",
            lambda ctx, commands, force=False: send_raw(ctx, [shouted(c) for c in commands], force),
            "send several G-code lines in one request",
            GROUP,
            params=(Param("commands", gcode_lines), force),
            legacy=lambda words: {"commands": words},
            danger=lambda a: policy.dangerous(a["commands"]),
        )
    )
    reg.register(
        Action(
            "msg",
            lambda ctx, text="": send(ctx, f"M117 {text}".rstrip()),
            "show TEXT on the printer's display (case kept; no text clears it)",
            GROUP,
            params=(Param("text", message_text, "", rest=True),),
        )
    )
    reg.register(
        Action(
            "beep",
            beep,
            "beep (M300)",
            GROUP,
            params=(
                Param("ms", to_int, 500, 1, 10000, "duration (ms)"),
                Param("hz", to_int, 2000, 20, 20000, "pitch (Hz)"),
            ),
        )
    )
    simple("click", "M108", "M108: break a waiting heat-up (like clicking the printer's knob)")
    simple("getpos", "M114", "M114: ask the printer to report its position")
    simple("stepon", "M17", "M17: enable the stepper motors")
    simple("stepoff", "M18", "M18: disable the stepper motors", states=MOTION_OK)
    # G4 by seconds (S) or by milliseconds (P); the one parameter is named for the unit people type.
    for name, word, param, text in (
        ("sleep", "S", Param("s", to_fixed, minval=0, maxval=3600), "G4 S: the printer dwells S seconds"),
        ("sleepms", "P", Param("ms", to_int, minval=0, maxval=3600000), "G4 P: the printer dwells MS ms"),
    ):
        dwell = lambda ctx, w=word, **value: send(ctx, f"G4 {w}{gnum(*value.values())}")  # noqa: E731
        reg.register(Action(name, dwell, text, GROUP, params=(param,)))
    reg.register(
        Action(
            "fan",
            fan,
            "part fan: on, off or 0..255 (M106/M107)",
            GROUP_FAN,
            params=(Param("speed", fan_value, minval=0, maxval=255, help="on, off or 0..255"),),
        )
    )
    reg.register(
        Action(
            "fan2",
            lambda ctx, on: send(ctx, f"M42 P57 S{255 if on else 0}"),
            "second fan on pin 57: on or off (M42)",
            GROUP_FAN,
            params=(Param("on", to_bool),),
            backends=OCTOPRINT_ONLY,
            not_there="Klipper has no M42: it names its fans and pins in printer.cfg (SET_FAN_SPEED, SET_PIN)",
        )
    )
    reg.register(
        Action(
            "servo",
            lambda ctx, num, angle: send(ctx, f"M280 P{num} S{angle}"),
            "move servo NUM to ANGLE (M280)",
            GROUP_FAN,
            params=(Param("num", to_int, minval=0, maxval=15), Param("angle", to_int, minval=0, maxval=180)),
            backends=OCTOPRINT_ONLY,
            not_there="Klipper has no M280: it moves a servo by name (SET_SERVO SERVO=… ANGLE=…)",
        )
    )


def fan(ctx: Context, speed: int) -> Result:
    return send(ctx, "M107" if speed == 0 else f"M106 S{speed}")
