"""What a jog looks like on the wire, per server: its request, how to spot it, and the distance it carries.

bench/daemon.py's trials and burst take one of these, so that the same machinery times OctoPrint's
`POST /api/printer/printhead` and Moonraker's `POST /printer/gcode/script` (the script the daemon sends).
"""

import json
import re
from decimal import Decimal


class OctoPrintJog:
    """OctoPrint's jog: {"command": "jog", "y": 0.1} to /api/printer/printhead, with the API key."""

    name = "octoprint"
    path = "/api/printer/printhead"
    learns = False  # the body is OctoPrint's documented one; nothing to learn from the daemon

    def is_jog(self, record):
        return record["m"] == "POST" and record["p"].startswith(self.path)

    def body(self, axis, mm):
        return {"command": "jog", axis: float(mm)}

    def distance(self, body_text, axis):
        return json.loads(body_text, parse_float=Decimal).get(axis, Decimal(0))


# The shipped guard macro's call (etc/klipper/octopanel.cfg) or the wrapped G1 (printers/moonraker/scripts.py).
MOVE_WORD = re.compile(r"(?:^|\s)([XYZ])=?(-?[\d.]+)")


class MoonrakerJog:
    """Moonraker's jog: {"script": ...} to /printer/gcode/script; the script is the daemon's own, learned from
    its first press of each direction (learn()), so that the bare client sends byte for byte the same jog."""

    name = "moonraker"
    path = "/printer/gcode/script"
    learns = True

    def __init__(self):
        self.scripts = {}  # (axis, mm as text) -> the script the daemon sent

    def is_jog(self, record):
        return record["m"] == "POST" and record["p"].startswith(self.path)

    def learn(self, axis, mm, body_text):
        self.scripts[(axis, str(mm))] = json.loads(body_text)["script"]

    def body(self, axis, mm):
        return {"script": self.scripts[(axis, str(mm))]}

    def distance(self, body_text, axis):
        script = json.loads(body_text).get("script", "")
        moves = [line for line in script.splitlines() if line.startswith(("OCTOPANEL_JOG", "G1 "))]
        found = [Decimal(v) for line in moves for a, v in MOVE_WORD.findall(line) if a == axis.upper()]
        return sum(found, Decimal(0))


OCTOPRINT = OctoPrintJog()
