"""A stateful fake of the OctoPrint client (same method names): records what would reach the printer."""

import threading
import time
from dataclasses import dataclass

from octopanel.errors import BadRequest, Busy, NotFound, Unreachable
from octopanel.printers.backend import PrinterState


class FakePrinter:
    """Implements the client methods the actions use; records what would reach the printer.

    `gate` cleared = OctoPrint hangs; `unreachable` = connection refused; `delay_s` = a slow answer."""

    refuses_motion_when_busy = True  # as OctoPrint: jog and home refused (409) unless idle or paused
    kind = "octoprint"
    server_name = "OctoPrint"
    move_start_lag_s = 0.1

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

    def _printhead(self):
        """OctoPrint refuses a jog or a home itself (409) unless idle or paused: octopanel relies on it."""
        if self.state_name not in ("idle", "paused"):
            raise Busy("the printer refused: Printer is not operational or currently printing", 409)

    def jog(self, x=None, y=None, z=None, speed=None):
        self._call()
        self._printhead()
        self.sent.append(("jog", x, y, z))

    def extrude(self, amount, speed=None):
        self._call()
        self.sent.append(("extrude", amount))

    def home(self, axes=("x", "y", "z")):
        self._call()
        self._printhead()
        self.sent.append(("home",))

    def job_command(self, command, action=None):
        self._call()
        self.sent.append((command, action))

    def gcode(self, lines):
        self._call()
        self.sent.append(("gcode", *lines))

    def beep(self, ms, hz):
        self.gcode([f"M300 P{ms} S{hz}"])  # as OctoPrint's client sends it

    # The rest of printers.backend.Backend: each call recorded as it would reach the printer, reads answered
    # with a fixed idle printer (tests/test_backend.py checks this fake covers the protocol).
    def _record(self, *what):
        self._call()
        self.sent.append(what)

    def version(self):
        self._call()
        return {"api": "0.1", "server": "1.11.8", "text": "OctoPrint 1.11.8 (fake)"}

    def connection(self):
        self._call()
        return {"current": {"state": self.state_name.title()}}

    def job(self):
        self._call()
        return {"state": self.state_name.title(), "job": {"file": {"name": None}}, "progress": {}}

    def bed(self):
        self._call()
        return {"bed": {"actual": 21.0, "target": 0}}

    def tuning(self):
        self._call()
        return {"tool": 0.0, "bed": 0.0, "feedrate": 100, "flowrate": 100, "remembered": []}

    def files(self):
        self._call()
        return {"files": []}

    def file_info(self, name):
        self._call()
        raise NotFound(f"not found: {name}")

    def system_commands(self):
        self._call()
        return {"core": [], "custom": []}

    def connect(self):
        self._record("connect")

    def disconnect(self):
        self._record("disconnect")

    def feedrate(self, factor):
        self._record("feedrate", factor)

    def flowrate(self, factor):
        self._record("flowrate", factor)

    def tool_target(self, targets):
        self._record("tool_target", targets)

    def bed_target(self, target):
        self._record("bed_target", target)

    def select_file(self, name, print_=False):
        self._record("select", name, print_)

    def upload(self, name, handle, select=False, print_=False, progress=None):
        self._record("upload", name, len(handle.read()), select, print_)

    def system_command(self, action, source="custom"):
        self._record("system", source, action)

    def firmware_restart(self):
        self.system_command("reset")

    def emergency_stop(self):
        self.gcode(["M112"])

    def close(self):
        pass


# -- a stateful fake of OctoPrint itself -----------------------------------------------------------------

# OctoPrint 1.11.8's states as octopanel names them (client.PrinterState), and what each allows.
BUSY = frozenset({"printing", "pausing", "resuming", "cancelling", "finishing"})
ACTIVE = BUSY | {"paused"}
OFFLINE = frozenset({"disconnected", "error"})
# Transitional states settle on the next poll: OctoPrint leaves them within about a second.
SETTLES_TO = {"pausing": "paused", "resuming": "printing", "cancelling": "idle", "finishing": "idle"}
AMBIENT_C = 21.0
HEAT_PER_POLL_C, COOL_PER_POLL_C = 45.0, 15.0


@dataclass
class Received:
    """One command as it reached the fake: what, the state and hotend temperature then, and its answer."""

    kind: str  # jog home extrude gcode job tool_target bed_target feedrate flowrate connect disconnect system select
    args: tuple
    state: str
    hotend: float
    accepted: bool = True


class FakeOctoPrint:
    """OctoPrint behind the Client's method names, with states that move as a real one's do.

    States: idle, printing, pausing, paused, resuming, cancelling, finishing, disconnected, error. The
    answers follow /work/shared/octoprint-facts.md: Busy (409) for jog/home/extrude while printing, pause,
    resume or cancel with nothing printing, restart when not paused, start with a job active, and
    anything needing the printer while disconnected; 204-and-nothing for pause while paused, resume while
    printing and start with no file. Every command is recorded in `received` (refused ones too), with the
    state and hotend temperature at that moment. A state() poll is one tick of the fake world: transitional
    states settle, temperatures move towards their targets, and with probability `chaos` (from `rng`)
    something happens on its own (a print starts or ends, the printer pauses itself or drops off).
    A temperature reading moves the temperatures too, but never the state, so that the state an action
    was checked against holds until its command arrives (a real OctoPrint changes between the two only
    by its own doing, which it then refuses with 409 itself)."""

    refuses_motion_when_busy = True  # as OctoPrint: jog and home refused (409) unless idle or paused
    kind = "octoprint"
    server_name = "OctoPrint"
    move_start_lag_s = 0.1

    def __init__(self, state="idle", hotend=AMBIENT_C, bed=AMBIENT_C, rng=None, chaos=0.0, file="part.gcode"):
        self.state_name, self.hotend, self.bed_temp = state, float(hotend), float(bed)
        self.tool_target_c, self.bed_target_c = 0.0, 0.0
        self.feedrate_pct, self.flowrate_pct = 100, 100
        self.rng, self.chaos, self.file = rng, chaos, file
        self.unreachable = False
        self.heat_per_poll_c = HEAT_PER_POLL_C  # 0: a heater that never heats
        self.received = []
        self.polls = 0

    # -- the fake world ------------------------------------------------------------------------------

    def _tick(self):
        self.polls += 1
        if self.state_name in SETTLES_TO:
            self.state_name = SETTLES_TO[self.state_name]
        self._heat()
        if self.rng is not None and self.chaos and self.rng.random() < self.chaos:
            self.state_name = self.rng.choice(
                {
                    "idle": ["printing", "disconnected"],
                    "printing": ["finishing", "pausing", "error"],
                    "paused": ["resuming", "cancelling"],
                    "disconnected": ["idle"],
                    "error": ["disconnected"],
                }.get(self.state_name, [self.state_name])
            )

    def _heat(self):
        """Temperatures move towards their targets (a reading is a tick too: waiting for heat must end)."""
        if self.state_name in OFFLINE:
            return
        for name, target in (("hotend", self.tool_target_c), ("bed_temp", self.bed_target_c)):
            goal = max(target, AMBIENT_C)
            now = getattr(self, name)
            step = self.heat_per_poll_c if goal > now else -COOL_PER_POLL_C
            setattr(self, name, min(goal, now + step) if step > 0 else max(goal, now + step))

    def _check(self):
        if self.unreachable:
            raise Unreachable("cannot reach OctoPrint at http://fake/: connection refused")

    def _receive(self, kind, *args, refuse=None, when=()):
        """Record a command; raise Busy like OctoPrint if the printer is offline or in one of `when`."""
        self._check()
        entry = Received(kind, args, self.state_name, self.hotend)
        self.received.append(entry)
        reason = refuse if self.state_name in when else None
        if self.state_name in OFFLINE:
            reason = "Printer is not operational"
        if reason:
            entry.accepted = False
            raise Busy(f"the printer refused: {reason}", 409, reason)
        return entry

    @property
    def sent(self):
        """The commands OctoPrint accepted, as (kind, *args)."""
        return [(r.kind, *r.args) for r in self.received if r.accepted]

    # -- reads ---------------------------------------------------------------------------------------

    def state(self):
        self._check()
        self._tick()
        return PrinterState(self.state_name)

    def profile(self):
        return {}

    def close(self):
        pass

    def version(self):
        self._check()
        return {"api": "0.1", "server": "1.11.8", "text": "OctoPrint 1.11.8 (fake)"}

    def connection(self):
        self._check()
        return {"current": {"state": "Closed" if self.state_name in OFFLINE else self.state_name.title()}}

    def job(self):
        self._check()
        text = {"disconnected": "Offline", "error": "Offline after error", "idle": "Operational"}
        return {"job": {"file": {"name": self.file}}, "state": text.get(self.state_name, self.state_name.title())}

    def tool(self):
        self._check()
        if self.state_name in OFFLINE:
            raise Busy("the printer refused: Printer is not operational", 409, "Printer is not operational")
        self._heat()
        return {"tool0": {"actual": self.hotend, "target": self.tool_target_c}}

    def bed(self):
        self._check()
        if self.state_name in OFFLINE:
            raise Busy("the printer refused: Printer is not operational", 409, "Printer is not operational")
        self._heat()
        return {"bed": {"actual": self.bed_temp, "target": self.bed_target_c}}

    def tuning(self):
        """What relative steps count from: this fake reports its factors, as Moonraker does."""
        self._check()
        if self.state_name in OFFLINE:
            raise Busy("the printer refused: Printer is not operational", 409, "Printer is not operational")
        factors = {"feedrate": self.feedrate_pct, "flowrate": self.flowrate_pct, "remembered": []}
        return {"tool": self.tool_target_c, "bed": self.bed_target_c, **factors}

    def system_commands(self):
        self._check()
        return {"core": [], "custom": [{"action": "reset", "name": "Reset"}]}

    def printer(self):
        self._check()
        if self.state_name in OFFLINE:
            raise Busy("the printer refused: Printer is not operational", 409, "Printer is not operational")
        return {"state": {"text": self.state_name.title(), "flags": {self.state_name: True}}}

    def files(self):
        self._check()
        return {"files": [{"name": self.file, "path": self.file, "type": "machinecode"}] if self.file else []}

    def file_info(self, name):
        self._check()
        if name != self.file:
            raise NotFound(f"not found: GET /api/files/local/{name}", 404)
        return {"name": name, "path": name, "type": "machinecode"}

    def upload(self, name, handle, select=False, print_=False, progress=None):
        self._receive("upload", name, len(handle.read()), select, print_)  # Client.upload takes an open file
        if select:
            self.file = name
        if print_:
            self.job_command("start")
        return {"files": {"local": {"name": name}}}

    # -- commands ------------------------------------------------------------------------------------

    def jog(self, x=None, y=None, z=None, speed=None):
        self._receive("jog", x, y, z, refuse="Printer is currently printing", when=BUSY)

    def home(self, axes=("x", "y", "z")):
        self._receive("home", tuple(axes), refuse="Printer is currently printing", when=BUSY)

    def extrude(self, amount, speed=None):
        self._receive("extrude", amount, refuse="Printer is currently printing", when=BUSY)

    def feedrate(self, factor):
        self._receive("feedrate", factor)
        self.feedrate_pct = factor

    def flowrate(self, factor):
        self._receive("flowrate", factor)
        self.flowrate_pct = factor

    def tool_target(self, targets):
        self._receive("tool_target", dict(targets))
        self.tool_target_c = float(targets.get("tool0", self.tool_target_c))

    def bed_target(self, target):
        self._receive("bed_target", target)
        self.bed_target_c = float(target)

    def beep(self, ms, hz):
        self.gcode([f"M300 P{ms} S{hz}"])

    def gcode(self, lines):
        self._receive("gcode", *lines)
        for line in lines:
            words = line.upper().split()
            value = next((float(w[1:]) for w in words[1:] if w.startswith("S") and _number(w[1:])), None)
            if words and words[0] in ("M104", "M109") and value is not None:
                self.tool_target_c = value
            elif words and words[0] in ("M140", "M190") and value is not None:
                self.bed_target_c = value
            elif words and words[0] == "M81":
                self.state_name = "disconnected"

    def job_command(self, command, action=None):
        state = self.state_name
        not_active = "Printer is neither printing nor paused"
        if command == "start":
            entry = self._receive("job", command, action, refuse="Printer already has an active print job", when=ACTIVE)
            if self.file:
                self.state_name = "printing"
            return entry
        if command == "restart":
            self._receive("job", command, action, refuse="Printer is not paused", when=STATES_ALL - {"paused"})
            self.state_name = "printing"
        elif command == "cancel":
            self._receive("job", command, action, refuse=not_active, when=STATES_ALL - ACTIVE)
            self.state_name = "cancelling"
        elif command == "pause":
            self._receive("job", command, action, refuse=not_active, when=STATES_ALL - ACTIVE)
            if action in ("pause", None) and state in BUSY - {"pausing", "cancelling"}:
                self.state_name = "pausing"
            elif action in ("resume", None) and state == "paused":
                self.state_name = "resuming"
        else:
            raise BadRequest(f"OctoPrint did not accept POST /api/job: Unknown command {command!r}", 400)

    def select_file(self, name, print_=False):
        self._receive("select", name, print_, refuse="Printer is currently printing", when=BUSY)
        self.file = name

    def connect(self):
        self._check()
        self.received.append(Received("connect", (), self.state_name, self.hotend))
        if self.state_name in OFFLINE:
            self.state_name = "idle"

    def disconnect(self):
        self._check()
        self.received.append(Received("disconnect", (), self.state_name, self.hotend))
        self.state_name = "disconnected"

    def system_command(self, action, source="custom"):
        self._check()
        self.received.append(Received("system", (source, action), self.state_name, self.hotend))
        if action != "reset":
            raise NotFound(f"not found: POST /api/system/commands/{source}/{action}", 404)

    def firmware_restart(self):
        self.system_command("reset")

    def emergency_stop(self):
        self.gcode(["M112"])


STATES_ALL = BUSY | OFFLINE | {"idle", "paused"}


def _number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
