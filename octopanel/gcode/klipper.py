"""Klipper's own commands (`SET_FAN_SPEED`, a printer.cfg macro): which may run while printing, and their caps.

gcode.parse reads them as klippy/gcode.py does (Command.params); gcode.policy applies these rules on the Klipper
backend and refuses the commands elsewhere (Marlin would not know them). While a job runs only the commands
below may go, each with only the parameters listed, all of which leave the head and the job alone: the allow
list, as for G-code. When idle or paused any command may run, a printer.cfg macro included: octopanel judges
its name and parameters, not its body, and Klipper's own limits (max_temp, min_extrude_temp) still hold.
"""

from octopanel.errors import UsageError
from octopanel.gcode.parse import Command, GcodeError, extended
from octopanel.values import to_float

# Allowed while printing: command -> the parameters it may carry there.
ALLOWED_WHILE_BUSY: dict[str, frozenset[str]] = {
    "SET_FAN_SPEED": frozenset({"FAN", "SPEED"}),
    "SET_HEATER_TEMPERATURE": frozenset({"HEATER", "TARGET"}),
    "SET_GCODE_OFFSET": frozenset({"Z_ADJUST", "MOVE"}),  # babystepping, bounded below
    "SET_LED": frozenset({"LED", "RED", "GREEN", "BLUE", "WHITE", "INDEX", "TRANSMIT", "SYNC"}),
    "SET_DISPLAY_TEXT": frozenset({"MSG"}),
    "RESPOND": frozenset({"MSG", "TYPE"}),
    "STATUS": frozenset(),
    "HELP": frozenset(),
    "GET_POSITION": frozenset(),
}  # not QUERY_PROBE or QUERY_ENDSTOPS: on some probes (BLTouch) a query may deploy the pin into the print
RESPOND_TYPES = frozenset({"echo", "echo_no_space", "error"})  # not `command`: a host action command

# Refused in any state: what they would do cannot be judged from the line.
UNJUDGED = {
    "RUN_SHELL_COMMAND": "runs a command on Klipper's host",
    "FORCE_MOVE": "moves a stepper regardless of homing, limits and the cold-extrusion check",
    "SET_GCODE_VARIABLE": "changes a macro's variables, and so what the macro will do later",
}

DANGEROUS = {
    "FIRMWARE_RESTART": "restarts Klipper and its micro-controllers",
    "RESTART": "restarts Klipper",
    "SAVE_CONFIG": "rewrites printer.cfg and restarts Klipper",
}


def heater_limit(heater: str) -> str:
    """The cap a heater's TARGET takes: every extruder the tool's, any other heater (bed, chamber) the bed's."""
    return "max_tool_temp" if heater.lower().startswith("extruder") else "max_bed_temp"


def number(command: Command, key: str) -> float:
    """A parameter as a finite number (values.to_float: `nan` compares false with every cap, so it is refused)."""
    value = (command.params or {}).get(key, "")
    try:
        return to_float(value)
    except ValueError:
        raise UsageError(f"'{command.text}': {key}={value} is not a finite number; nothing sent") from None


def check_always(command: Command, limits: dict[str, float]) -> None:
    """Caps and refusals of every state for one of Klipper's commands. UsageError if broken."""
    code, params = command.code, command.params or {}
    if code in UNJUDGED:
        raise UsageError(f"'{command.text}': {code} {UNJUDGED[code]}; refused, nothing sent")
    if code in ("SET_HEATER_TEMPERATURE", "PID_CALIBRATE") and "TARGET" in params:
        limit = heater_limit(params.get("HEATER", ""))
        target = number(command, "TARGET")
        if target > limits[limit]:
            raise UsageError(f"'{command.text}': {target:g} °C is above {limit} {limits[limit]:g}; nothing sent")


def command_names(raw: object) -> tuple[str, ...]:
    """The setting `klipper_allowed_while_printing`: a list of Klipper command or macro names (upper-cased), each
    one Klipper would read as written; ValueError otherwise."""
    items = raw if isinstance(raw, (list, tuple)) else [] if raw in (None, "") else str(raw).split(",")
    names = []
    for item in items:
        try:
            command = extended(str(item).strip())
        except GcodeError:
            command = None
        if command is None or command.params:
            raise ValueError(f"expected Klipper command names such as LIGHTS_ON, got {str(item)!r}")
        if command.code in UNJUDGED:
            raise ValueError(f"{command.code} {UNJUDGED[command.code]}: it is never allowed")
        names.append(command.code)
    return tuple(names)


def busy_refusal(command: Command, babystep_mm: float, also: tuple[str, ...] = ()) -> str | None:
    """Why this command may not run while a job prints, or None if it may (`also`: names the user's setting
    klipper_allowed_while_printing vouches for, with any parameters)."""
    code, params = command.code, command.params or {}
    if code in also:
        return None
    allowed = ALLOWED_WHILE_BUSY.get(code)
    if allowed is None:
        return (
            f"{code} is not one of the commands allowed while printing ({', '.join(ALLOWED_WHILE_BUSY)}; a "
            "printer.cfg macro you know to be harmless mid-print can be added with klipper_allowed_while_printing)"
        )
    extra = sorted(set(params) - allowed)
    if extra:
        return f"{code} may carry only {', '.join(sorted(allowed)) or 'no parameters'} while printing, not {extra[0]}"
    if code == "SET_FAN_SPEED" and "SPEED" in params and not 0 <= number(command, "SPEED") <= 1:
        return "SET_FAN_SPEED SPEED is 0..1"
    if code == "SET_GCODE_OFFSET":
        if "Z_ADJUST" not in params or not -babystep_mm <= number(command, "Z_ADJUST") <= babystep_mm:
            return f"SET_GCODE_OFFSET while printing is a Z_ADJUST within ±{babystep_mm:g} mm"
    if code == "RESPOND" and params.get("TYPE", "echo").lower() not in RESPOND_TYPES:
        return "RESPOND TYPE=command would send the host an action command"
    return None
