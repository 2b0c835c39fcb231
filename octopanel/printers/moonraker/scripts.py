"""The G-code scripts the Moonraker backend sends: moves wrapped so that a job's G-code state is untouched.

Klipper slots a script between a job's lines, so a bare `G91` would turn the job's next moves relative (a
134 mm diagonal was seen). Each move is one script that saves and restores the G-code state, as Mainsail
and Fluidd send it, or a call of octopanel's guard macro, which Klipper runs only when no job is printing.
"""

from octopanel.gcode import parse as gcode_parse
from octopanel.printers.octoprint.client import plain

STATE_NAME = "octopanel_move"
RESTORE = f"RESTORE_GCODE_STATE NAME={STATE_NAME}"
RAW_STATE_NAME = "octopanel_raw"  # raw G-code that changes modes: restored if Klipper refuses a line of it
MODE_CODES = frozenset({"G90", "G91", "M82", "M83"})
MACROS = {"jog": "OCTOPANEL_JOG", "home": "OCTOPANEL_HOME", "extrude": "OCTOPANEL_EXTRUDE"}


def wrapped(*lines: str, mode: str | None = "G91") -> str:
    """`lines` (in relative `mode`) between SAVE_GCODE_STATE and RESTORE_GCODE_STATE, as one script. A line
    Klipper refuses ends the script before the restore: the caller then sends RESTORE (client.guarded)."""
    body = [*([mode] if mode else []), *lines]
    return "\n".join([f"SAVE_GCODE_STATE NAME={STATE_NAME}", *body, RESTORE])


def words(axes: dict[str, float]) -> str:
    return " ".join(f"{axis.upper()}{plain(value)}" for axis, value in axes.items())


def jog(axes: dict[str, float], feed: float, macro: bool) -> str:
    if macro:
        params = " ".join(f"{a.upper()}={plain(v)}" for a, v in axes.items())
        return wrapped(f"{MACROS['jog']} {params} F={plain(feed)}", mode=None)
    return wrapped(f"G1 {words(axes)} F{plain(feed)}")


def home(axes: tuple[str, ...], macro: bool) -> str:
    named = "".join(a.upper() for a in axes)
    if macro:
        return f"{MACROS['home']} AXES={named}"
    return "G28 " + " ".join(named)


def extrude(amount: float, feed: float, macro: bool) -> str:
    if macro:
        return wrapped(f"{MACROS['extrude']} E={plain(amount)} F={plain(feed)}", mode=None)
    return wrapped(f"G1 E{plain(amount)} F{plain(feed)}", mode="M83")


def changes_mode(line: str) -> bool:
    """Whether a raw line switches absolute/relative mode (G90, G91, M82, M83), read by gcode/parse.py."""
    try:
        command = gcode_parse.parse(line)
    except ValueError:
        return False
    return command is not None and command.code in MODE_CODES
