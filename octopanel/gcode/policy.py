"""Judging raw G-code by its effect: what may go while printing, the rules that always hold, and danger.

Every line is read by gcode.parse (as Marlin reads it) and judged on the parsed Command; what is sent is
`Command.line()`, so the printer receives exactly what was judged. Caps and the always-refused commands
raise UsageError (exit 2); a refusal for the printer's state or a cold hotend raises SafetyError (exit 1).
`force` (a human at a shell) lifts only those two; caps and protections never lift.
"""

from collections.abc import Callable, Iterable

from octopanel.errors import SafetyError, UsageError
from octopanel.gcode import klipper
from octopanel.gcode.parse import Command, GcodeError, parse
from octopanel.printers.backend import BUSY_STATES

# While a print runs, only these may go: none can move the head, extrude, change coordinates or modes,
# or weaken a protection (their values are bounded below). M112 stops everything, which is always safe.
ALLOWED_WHILE_BUSY = frozenset(
    {
        "M117",
        "M118",
        "M300",
        "M106",
        "M107",
        "M220",
        "M221",
        "M104",
        "M140",
        "M290",
        "M114",
        "M105",
        "M27",
        "M31",
        "M115",
        "M119",
        "M503",
        "M73",
        "M112",
    }
)

# A move that carries an E word extrudes (G6 is a direct stepper move, G5 a Bezier move).
MOVES = frozenset({"G0", "G1", "G2", "G3", "G5", "G6"})
# These push filament whatever their words say.
FILAMENT = frozenset({"M600", "M701", "M702"})

# Temperature targets: code -> {word: limit name}. Chamber (M141/M191) has no setting of its own and
# takes the bed's cap; M303 (autotune) is capped by heater, see autotune_limit().
TEMPERATURE_WORDS = {
    "M104": {"S": "max_tool_temp", "R": "max_tool_temp", "B": "max_tool_temp"},
    "M109": {"S": "max_tool_temp", "R": "max_tool_temp", "B": "max_tool_temp"},
    "M140": {"S": "max_bed_temp", "R": "max_bed_temp"},
    "M190": {"S": "max_bed_temp", "R": "max_bed_temp"},
    "M141": {"S": "max_bed_temp", "R": "max_bed_temp"},
    "M191": {"S": "max_bed_temp", "R": "max_bed_temp"},
    "M145": {"H": "max_tool_temp", "B": "max_bed_temp"},  # preheat presets the display menu heats to
}
BABYSTEP_MM = 0.2  # the largest M290 step: a first-layer nudge, never a move

# Refused in any state: their lines would run later, unjudged (macros, writing a file to print).
UNJUDGED = {
    "M28": "writes the following lines to a file instead of judging them",
    "M29": "ends writing a file (M28)",
} | {f"M{n}": "defines or runs a G-code macro whose lines cannot be judged" for n in range(810, 820)}

DANGEROUS = {
    "M0": "stops and waits for a button on the printer",
    "M1": "stops and waits for a button on the printer",
    "M81": "turns the printer's power supply off",
    "M112": "is an emergency stop: the printer halts until it is reset",
    "M410": "stops all motion at once and loses the head's position",
    "M502": "resets every setting to the firmware defaults",
    "M997": "starts a firmware update",
    "M999": "restarts the firmware after an error",
}


def commands(lines: str | Iterable[str]) -> list[Command]:
    """The parsed Commands of `lines` (a string or a list of strings), empty lines dropped."""
    if isinstance(lines, str):
        lines = [lines]
    found = []
    for line in lines:
        command = parse(line)
        if command is not None:
            found.append(command)
    return found


def dangerous(code_lines: str | Iterable[str]) -> str | None:
    """Why these G-code lines need a confirming gesture, or None; GcodeError if a line cannot be read."""
    for command in commands(code_lines):
        table = DANGEROUS if command.params is None else klipper.DANGEROUS
        if command.base in table:
            return f"{command.code} {table[command.base]}"
    return None


def firmware_bool(value: float | None) -> bool:
    """How Marlin's value_bool() reads a word: a bare letter is true, else its integer part clamped >= 0."""
    return value is None or int(value) > 0


def autotune_limit(command: Command) -> str:
    return "max_bed_temp" if (command.words.get("E") or 0) < 0 else "max_tool_temp"


def check_always(command: Command, limits: dict[str, float]) -> None:
    """The rules of every state: caps, bounded values and protections that stay on. UsageError if broken."""
    code, words, text = command.base, command.words, command.text
    caps = dict(TEMPERATURE_WORDS.get(code, {}))
    if code == "M303":
        caps = {"S": autotune_limit(command)}
    for word, limit_name in caps.items():
        value = words.get(word)
        if value is not None and value > limits[limit_name]:
            raise UsageError(f"'{text}': {value:g} °C is above {limit_name} {limits[limit_name]:g}; nothing sent")
    if code in UNJUDGED:
        raise UsageError(f"'{text}': {command.code} {UNJUDGED[code]}; refused, nothing sent")
    if code == "M302" and (
        ("P" in words and firmware_bool(words["P"]))
        or ("S" in words and (words["S"] or 0) < limits["min_extrude_temp"])
    ):
        raise UsageError(
            f"'{text}': M302 would allow extrusion below min_extrude_temp "
            f"{limits['min_extrude_temp']:g} °C; refused, nothing sent"
        )
    if code == "M211" and "S" in words and not firmware_bool(words["S"]):
        raise UsageError(f"'{text}': M211 S0 turns the soft endstops off; refused, nothing sent")
    if code in ("M220", "M221") and words.get("S") is not None:
        check_range(text, "S", words["S"], limits["min_factor"], limits["max_factor"], "%")
    if code == "M106" and words.get("S") is not None:
        check_range(text, "S", words["S"], 0, 255, "")
    if code == "M290":
        for word in ("X", "Y", "Z", "S"):  # P is a flag (adjust the probe offset), not a distance
            if words.get(word) is not None:
                check_range(text, word, words[word], -BABYSTEP_MM, BABYSTEP_MM, " mm")
    if code == "M118" and "ACTION:" in (command.arg or "").upper():
        raise UsageError(f"'{text}': M118 would send OctoPrint an action command; refused, nothing sent")


def check_range(text: str, word: str, value: float | None, low: float, high: float, unit: str) -> None:
    assert value is not None  # callers check that the word has a value
    if not low <= value <= high:
        raise UsageError(f"'{text}': {word}{value:g} is outside {low:g}..{high:g}{unit}; nothing sent")


def extrudes(command: Command) -> bool:
    return command.base in FILAMENT or (command.base in MOVES and "E" in command.words)


def busy_refusal(command: Command, also: tuple[str, ...] = ()) -> str | None:
    """Why a line may not go while a job prints, or None if it may (`also`: Klipper commands the user allows)."""
    if command.params is not None:
        return klipper.busy_refusal(command, BABYSTEP_MM, also)
    if command.base in ALLOWED_WHILE_BUSY:
        return None
    allowed = ", ".join(sorted(ALLOWED_WHILE_BUSY, key=lambda c: int(c[1:])))
    return f"{command.code} is not allowed while printing. Allowed while printing: {allowed}"


def check(
    lines: str | Iterable[str],
    limits: dict[str, float],
    state: Callable[[], str],
    hotend_temp: Callable[[], float | None],
    force: bool = False,
    klipper_commands: bool = False,
    klipper_also_allowed: tuple[str, ...] = (),
) -> list[str]:
    """The lines to send (each as judged), or UsageError/SafetyError with nothing sent.

    state() returns the printer's state name and hotend_temp() the hotend's temperature (None if
    unknown); each is called only when a line needs it. klipper_commands: the printer is Klipper, which
    also runs its own commands (gcode.klipper); elsewhere they are refused. klipper_also_allowed: more of them
    that may run while printing (the setting klipper_allowed_while_printing)."""
    try:
        parsed = commands(lines)
    except GcodeError as exc:
        raise UsageError(f"{exc}; nothing sent") from None
    for command in parsed:
        if command.params is None:
            check_always(command, limits)
        elif not klipper_commands:
            raise UsageError(
                f"'{command.text}': {command.code} is a Klipper command, which this printer's firmware does not "
                "know; nothing sent"
            )
        else:
            klipper.check_always(command, limits)
    if not force:
        refusals = [(command, why) for command in parsed if (why := busy_refusal(command, klipper_also_allowed))]
        if refusals:
            name = state()
            if name in BUSY_STATES:
                command, why = refusals[0]
                raise SafetyError(
                    f"'{command.text}': {command.code} refused while it is {name} (--force overrides); "
                    f"nothing sent. {why}"
                )
        if any(extrudes(command) for command in parsed):
            actual, minimum = hotend_temp(), limits["min_extrude_temp"]
            if actual is None or actual < minimum:
                shown = "unknown" if actual is None else f"{actual:g} °C"
                raise SafetyError(
                    f"the hotend is at {shown}, below min_extrude_temp {minimum:g} °C: heat it "
                    "first (8settemp) or add --force; nothing sent"
                )
    return [command.line() for command in parsed]
