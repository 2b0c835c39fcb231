"""Raw G-code and the small commands that are one G-code line: messages, beeps, fans, servos, steppers."""

import re

from ..bounds import show, to_bool, to_float, to_int
from ..errors import SafetyError, UsageError
from .context import Result, gcode_line, gcode_lines
from .registry import BUSY_STATES, MOTION_OK, Action, Param

GROUP = "G-code"
GROUP_FAN = "Fans and servos"


# Raw G-code that moves the head, homes or extrudes: refused while printing, like jog, home and extrude.
MOTION_GCODES = frozenset({"G0", "G1", "G2", "G3", "G5", "G10", "G11", "G28", "G29", "G30", "G34", "G35", "G80",
                           "G425"})
# Firmware reads `N10 G01X5` as `G1 X5`: strip a line number, leading zeros and what follows the number.
COMMAND = re.compile(r"^\s*(?:N\d+\s*)?([GMT])0*(\d+)(?:\.\d+)?", re.IGNORECASE)


def command_word(line):
    """The G-code command a line starts with, normalised ('N10 g01x5' -> 'G1'), or ''."""
    match = COMMAND.match(line)
    return f"{match.group(1).upper()}{match.group(2) or '0'}" if match else ""


def send(ctx, *lines):
    ctx.client.gcode(lines)
    return Result(" | ".join(lines) + " sent")


HEATER_LIMITS = {"M104": "max_tool_temp", "M109": "max_tool_temp", "M140": "max_bed_temp", "M190": "max_bed_temp"}
TEMPERATURE = re.compile(r"[SR]\s*(-?\d+(?:\.\d*)?)", re.IGNORECASE)
EXTRUSION = re.compile(r"\bE\s*-?\d", re.IGNORECASE)


def check_caps(ctx, lines):
    """The temperature caps of settemp/setbed hold for raw G-code too."""
    for line in lines:
        word = command_word(line)
        if word in HEATER_LIMITS:
            limit = ctx.limits[HEATER_LIMITS[word]]
            for match in TEMPERATURE.finditer(COMMAND.sub("", line, count=1)):
                if float(match.group(1)) > limit:
                    raise UsageError(f"'{line}': {match.group(1)} °C is above {HEATER_LIMITS[word]} {limit:g}; "
                                     "nothing sent")


def extrudes(line):
    return command_word(line) in ("G0", "G1", "G2", "G3") and bool(EXTRUSION.search(COMMAND.sub("", line, count=1)))


def send_raw(ctx, lines, force=False):
    """Raw G-code keeps the rules of the typed actions: temperature caps always; motion only when not
    printing, and extrusion only when hot, unless --force."""
    check_caps(ctx, lines)
    motion = [line for line in lines if command_word(line) in MOTION_GCODES]
    if motion and not force:
        state = ctx.client.state()
        if state.name in BUSY_STATES:
            raise SafetyError(f"'{motion[0]}' moves the printer, refused while it is {state.name} "
                              "(--force overrides); nothing sent")
    if any(extrudes(line) for line in lines):
        from .motion import check_hot

        check_hot(ctx, force)
    return send(ctx, *lines)


def message_text(text):
    """Display text: one line, may be empty (a bare M117 clears the display)."""
    text = str(text).strip()
    return gcode_line(text) if text else ""


def fan_value(text):
    lowered = str(text).lower()
    if lowered == "on" or text is True:
        return 255
    if lowered == "off" or text is False:
        return 0
    try:
        return to_int(text)
    except ValueError:
        raise ValueError(f"expected on, off or 0..255, got {show(text)}") from None


def register(reg):
    def simple(name, code, help_, commands=(), **kw):
        reg.register(Action(name, lambda ctx: send(ctx, code), help_, GROUP, commands=commands, **kw))

    force = Param("force", to_bool, False, flag="--force", help="allow motion G-code while printing")
    reg.register(Action("g", lambda ctx, code, force=False: send_raw(ctx, [code.upper()], force),
                        "send one G-code line (upper-cased)", GROUP,
                        params=(Param("code", gcode_line, rest=True), force), commands=("g", "gcode")))
    for axis_cmd in ("G0", "G1"):
        reg.register(Action(axis_cmd.lower(), lambda ctx, coords, c=axis_cmd: send(ctx, f"{c} {coords.upper()}"),
                            f"send {axis_cmd} COORDS (raw move: no safety checks beyond the G-code's own)",
                            GROUP, params=(Param("coords", gcode_line, rest=True),), states=MOTION_OK))
    reg.register(Action("gmulti", lambda ctx, commands, force=False: send_raw(ctx, [c.upper() for c in commands], force),
                        "send several G-code lines in one request", GROUP,
                        params=(Param("commands", gcode_lines), force), legacy=lambda words: {"commands": words}))
    reg.register(Action("msg", lambda ctx, text="": send(ctx, f"M117 {text}".rstrip()),
                        "show TEXT on the printer's display (case kept; no text clears it)", GROUP,
                        params=(Param("text", message_text, "", rest=True),)))
    reg.register(Action("beep", lambda ctx, ms, hz: send(ctx, f"M300 P{ms} S{hz}"), "beep (M300)", GROUP,
                        params=(Param("ms", to_int, 500, 1, 10000, "duration (ms)"),
                                Param("hz", to_int, 2000, 20, 20000, "pitch (Hz)"))))
    simple("click", "M108", "M108: break a waiting heat-up (like clicking the printer's knob)")
    simple("getpos", "M114", "M114: ask the printer to report its position")
    simple("stepon", "M17", "M17: enable the stepper motors")
    simple("stepoff", "M18", "M18: disable the stepper motors", states=MOTION_OK)
    reg.register(Action("sleep", lambda ctx, s: send(ctx, f"G4 S{s:g}"), "G4 S: the printer dwells S seconds",
                        GROUP, params=(Param("s", to_float, minval=0, maxval=3600),)))
    reg.register(Action("sleepms", lambda ctx, ms: send(ctx, f"G4 P{ms}"), "G4 P: the printer dwells MS ms",
                        GROUP, params=(Param("ms", to_int, minval=0, maxval=3600000),)))
    reg.register(Action("fan", fan, "part fan: on, off or 0..255 (M106/M107)", GROUP_FAN,
                        params=(Param("speed", fan_value, minval=0, maxval=255, help="on, off or 0..255"),)))
    reg.register(Action("fan2", lambda ctx, on: send(ctx, f"M42 P57 S{255 if on else 0}"),
                        "second fan on pin 57: on or off (M42)", GROUP_FAN, params=(Param("on", to_bool),)))
    reg.register(Action("servo", lambda ctx, num, angle: send(ctx, f"M280 P{num} S{angle}"),
                        "move servo NUM to ANGLE (M280)", GROUP_FAN,
                        params=(Param("num", to_int, minval=0, maxval=15), Param("angle", to_int, minval=0,
                                                                                 maxval=180))))


def fan(ctx, speed):
    return send(ctx, "M107" if speed == 0 else f"M106 S{speed}")

