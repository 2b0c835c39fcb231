"""A stateful fake of the OctoPrint client (same method names): records what would reach the printer."""

import threading
import time

from octopanel.client import PrinterState
from octopanel.errors import Unreachable


class FakePrinter:
    """Implements the client methods the actions use; records what would reach the printer.

    `gate` cleared = OctoPrint hangs; `unreachable` = connection refused; `delay_s` = a slow answer."""

    def __init__(self, state="idle", hotend=210.0, delay_s=0.0):
        self.state_name, self.hotend, self.delay_s = state, hotend, delay_s
        self.gate = threading.Event()
        self.gate.set()
        self.unreachable = False
        self.sent = []

    def _call(self):
        self.gate.wait()
        if self.unreachable:
            raise Unreachable("cannot reach OctoPrint: connection refused")
        if self.delay_s:
            time.sleep(self.delay_s)

    def state(self):
        self._call()
        return PrinterState(self.state_name)

    def profile(self):
        return {}

    def tool(self):
        self._call()
        return {"tool0": {"actual": self.hotend, "target": 0}}

    def jog(self, x=None, y=None, z=None, speed=None):
        self._call()
        self.sent.append(("jog", x, y, z))

    def extrude(self, amount, speed=None):
        self._call()
        self.sent.append(("extrude", amount))

    def home(self, axes=("x", "y", "z")):
        self._call()
        self.sent.append(("home",))

    def job_command(self, command, action=None):
        self._call()
        self.sent.append((command, action))

    def gcode(self, lines):
        self._call()
        self.sent.append(("gcode", *lines))
