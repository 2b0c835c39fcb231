"""The G-code scripts the Moonraker backend sends: moves wrapped so that a job's G-code state is untouched.

Klipper slots a script between a job's lines, so a bare `G91` would turn the job's next moves relative (a
134 mm diagonal was seen). Each move is one script that saves and restores the G-code state, as Mainsail
and Fluidd send it, or a call of octopanel's guard macro, which Klipper runs only when no job is printing.
"""

from octopanel.printers.octoprint.client import plain

STATE_NAME = "octopanel_move"
MACROS = {"jog": "OCTOPANEL_JOG", "home": "OCTOPANEL_HOME", "extrude": "OCTOPANEL_EXTRUDE"}


def wrapped(*moves: str, extrude_relative: bool = False) -> str:
    """`moves` in relative mode, between SAVE_GCODE_STATE and RESTORE_GCODE_STATE, as one script."""
    mode = ["M83"] if extrude_relative else ["G91"]
    lines = [f"SAVE_GCODE_STATE NAME={STATE_NAME}", *mode, *moves, f"RESTORE_GCODE_STATE NAME={STATE_NAME}"]
    return "\n".join(lines)


def words(axes: dict[str, float]) -> str:
    return " ".join(f"{axis.upper()}{plain(value)}" for axis, value in axes.items())


def jog(axes: dict[str, float], feed: float, macro: bool) -> str:
    if macro:
        return f"{MACROS['jog']} " + " ".join(f"{a.upper()}={plain(v)}" for a, v in axes.items()) + f" F={plain(feed)}"
    return wrapped(f"G1 {words(axes)} F{plain(feed)}")


def home(axes: tuple[str, ...], macro: bool) -> str:
    named = "".join(a.upper() for a in axes)
    if macro:
        return f"{MACROS['home']} AXES={named}"
    return "G28 " + " ".join(named)


def extrude(amount: float, feed: float, macro: bool) -> str:
    if macro:
        return f"{MACROS['extrude']} E={plain(amount)} F={plain(feed)}"
    return wrapped(f"G1 E{plain(amount)} F{plain(feed)}", extrude_relative=True)
