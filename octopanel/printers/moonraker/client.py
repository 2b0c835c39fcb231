"""The Klipper backend: Moonraker's HTTP API, one keep-alive session, a deadline on every call, typed errors.

API reference: https://moonraker.readthedocs.io/en/latest/web_api/ . Klipper moves whenever told, even mid-job,
so this backend does not refuse motion itself (invoke() reads the state first) and sends every move as one
guarded script (scripts.py).
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO
from urllib.parse import quote

from octopanel.errors import BadRequest, PrinterError, ServerError, UsageError
from octopanel.printers.backend import DEFAULT_SPEEDS, PrinterState
from octopanel.printers.moonraker import replies, scripts
from octopanel.printers.moonraker.session import LONG_READ_S, MoonrakerSession
from octopanel.printers.octoprint.multipart import MultipartBody
from octopanel.printers.octoprint.urlpath import file_path

# Klipper answers a query on its next status tick (0.25 s while Moonraker is subscribed): the temperatures a
# state read just fetched serve a tool() or bed() read this soon after (8ex reads the state, then the hotend).
STATUS_REUSE_S = 1.0
GCODE_STORE_READ = 100  # console entries read back after raw G-code: the script's own and what followed
NO_KLIPPER_MEANING = "has no meaning on Klipper through Moonraker (an OctoPrint command); nothing sent"


class MoonrakerClient(MoonrakerSession):
    """One method per Moonraker endpoint used; a printers.backend."""

    kind = "moonraker"
    # Klipper schedules a move into an empty queue BUFFER_TIME_START (0.25 s) ahead, after its lookahead flush:
    # measured on KlipperSim, Z moves began 0.37 s after their script was answered (15 of 15 samples).
    move_start_lag_s = 0.37
    refuses_motion_when_busy = False  # Klipper accepts a jog mid-print and slots it between the job's moves

    # -- information ----------------------------------------------------------------------

    def state(self) -> PrinterState:
        """Always read afresh (every move is judged on it); the first read also fetches the limits for
        profile(), in the same query."""
        profile_due = self.profile_due()
        try:
            status = self.query(*replies.STATE_OBJECTS, *(["configfile=settings"] if profile_due else []))
            self._status, self._status_at = status, self._now()
            if profile_due and "configfile" in status:
                self._set_profile(status)
            return replies.from_status(status)
        except ServerError as exc:
            if exc.status == 503:  # Moonraker is up, Klipper's host is not connected to it
                return PrinterState("disconnected", f"Offline: {exc.response_text}", ("moonraker:503",))
            raise

    def profile(self) -> dict[str, Any]:
        """Feed rates per axis (mm/min) in OctoPrint's profile shape, from Klipper's limits: the jog speed
        and the backlog model's. Cached for PROFILE_TTL_S."""
        if self.profile_due():
            return self._set_profile(self.query("configfile=settings"))
        return self.cached_profile()

    def _set_profile(self, status: dict[str, Any]) -> dict[str, Any]:
        settings = (status.get("configfile") or {}).get("settings") or {}
        printer, extruder = settings.get("printer") or {}, settings.get("extruder") or {}
        limits = {
            "x": printer.get("max_velocity"),
            "y": printer.get("max_velocity"),
            "z": printer.get("max_z_velocity") or printer.get("max_velocity"),
            "e": extruder.get("max_extrude_only_velocity"),
        }
        axes = {}
        for axis, default in DEFAULT_SPEEDS.items():
            limit = limits[axis]
            speed = min(default, float(limit) * 60) if isinstance(limit, (int, float)) and limit > 0 else default
            axes[axis] = {"speed": speed, "inverted": False}
        return self.keep_profile({"axes": axes})

    def version(self) -> dict[str, Any]:
        server = self.call("GET", "server/info") or {}
        printer = self.call("GET", "printer/info") or {}
        app = printer.get("app") or "Klipper"
        text = f"Moonraker {server.get('moonraker_version')}, {app} {printer.get('software_version') or ''}".strip()
        return {"api": server.get("api_version_string"), "server": server.get("moonraker_version"), "text": text}

    def connection(self) -> dict[str, Any]:
        state = self.state()
        info = self.call("GET", "server/info") or {}
        return {"current": {"state": state.text, "port": None}, "klippy_state": info.get("klippy_state")}

    def job(self) -> dict[str, Any]:
        status = self.query("print_stats", "virtual_sdcard", "webhooks")
        job, card = status.get("print_stats") or {}, status.get("virtual_sdcard") or {}
        return {
            "job": {"file": {"name": job.get("filename") or None}},
            "progress": {"completion": 100.0 * float(card.get("progress") or 0.0)},
            "state": replies.from_status(status).text,
            "print_stats": job,
        }

    def recent(self, name: str) -> dict[str, Any]:
        """One object's status: from the last state read if it is younger than STATUS_REUSE_S, else asked."""
        if name in self._status and self._now() - self._status_at < STATUS_REUSE_S:
            return self._status[name] or {}
        return self.query(name).get(name) or {}

    def tool(self) -> dict[str, Any]:
        extruder = self.recent("extruder")
        return {
            "tool0": {
                "actual": extruder.get("temperature"),
                "target": extruder.get("target"),
                "can_extrude": extruder.get("can_extrude"),
            }
        }

    def bed(self) -> dict[str, Any]:
        bed = self.recent("heater_bed")
        return {"bed": {"actual": bed.get("temperature"), "target": bed.get("target")}}

    def tuning(self) -> dict[str, Any]:
        """printers.backend's tuning(): Klipper reports all four, so nothing is remembered."""
        status = self.query("extruder", "heater_bed", "gcode_move")
        move = status.get("gcode_move") or {}

        def percent(factor: Any) -> int | None:
            return int(round(float(factor) * 100)) if isinstance(factor, (int, float)) else None

        return {
            "tool": (status.get("extruder") or {}).get("target"),
            "bed": (status.get("heater_bed") or {}).get("target"),
            "feedrate": percent(move.get("speed_factor")),
            "flowrate": percent(move.get("extrude_factor")),
            "remembered": [],
        }

    def files(self) -> dict[str, Any]:
        listed = self.call("GET", "server/files/list?root=gcodes") or []
        return {
            "files": [
                {"name": f["path"].rsplit("/", 1)[-1], "path": f["path"], "type": "machinecode", "size": f.get("size")}
                for f in listed
                if isinstance(f, dict) and f.get("path")
            ]
        }

    def file_info(self, name: str) -> dict[str, Any]:
        return self.call("GET", "server/files/metadata?filename=" + quote(file_path(name)))

    def system_commands(self) -> dict[str, Any]:
        raise UsageError(f"OctoPrint's system commands {NO_KLIPPER_MEANING}")

    # -- commands -------------------------------------------------------------------------

    def connect(self) -> Any:
        raise UsageError(f"connecting to a serial port {NO_KLIPPER_MEANING}")

    def disconnect(self) -> Any:
        raise UsageError(f"disconnecting from a serial port {NO_KLIPPER_MEANING}")

    def job_command(self, command: str, action: str | None = None) -> Any:
        if command == "start":
            name = (self.query("print_stats").get("print_stats") or {}).get("filename")
            if not name:
                raise UsageError("no file is selected: select one with 8fselect; nothing sent")
            return self.start(name)
        if command == "pause" and action is None:  # the raw toggle: Klipper has none, so read which it is
            action = "resume" if self.state().name == "paused" else "pause"
        paths: dict[tuple[str, str | None], str] = {
            ("pause", "pause"): "printer/print/pause",
            ("pause", "resume"): "printer/print/resume",
        }
        path = paths.get((command, action)) or {"cancel": "printer/print/cancel"}.get(command)
        if path is None:
            raise UsageError(f"the job command {command!r} {NO_KLIPPER_MEANING}")
        return self.call("POST", path, read_s=LONG_READ_S)

    def guarded(self, text: str, state_name: str = scripts.STATE_NAME) -> Any:
        """A script that saved the G-code state first: if Klipper refuses a line of it (out of range, too cold,
        the guard macro), the rest never ran, the restore included; restore it now, then report the refusal."""
        try:
            return self.script(text)
        except BadRequest:
            try:
                self.script(f"RESTORE_GCODE_STATE NAME={state_name}")
            except PrinterError:
                pass  # the refusal below is what the user needs to hear
            raise

    def start(self, name: str) -> Any:
        return self.call("POST", "printer/print/start?filename=" + quote(file_path(name)), read_s=LONG_READ_S)

    def gcode(self, lines: Sequence[str]) -> Any:
        """Raw lines as one script. Klipper answers 200 to a command it does not know and only says so on its
        console ('// Unknown command:"M300"'): that is read back, so that it is not reported as done."""
        text = "\n".join(lines)
        if any(scripts.changes_mode(line) for line in lines):
            # A refused line ends the script: the G90 after a G91 would never run, and the next move would be
            # relative. Save the state first and restore it if Klipper refuses a line.
            result = self.guarded(f"SAVE_GCODE_STATE NAME={scripts.RAW_STATE_NAME}\n{text}", scripts.RAW_STATE_NAME)
        else:
            result = self.script(text)
        unknown = replies.unknown_commands(self.call("GET", f"server/gcode_store?count={GCODE_STORE_READ}"), text)
        if unknown:
            raise BadRequest(
                f"Klipper does not know {', '.join(unknown)} and ignored it (a [gcode_macro] in printer.cfg can "
                "define it)" + ("; the other lines ran" if len(lines) > len(unknown) else ""),
                200,
            )
        return result

    def beep(self, ms: int, hz: int) -> Any:
        """M300 is Marlin's: Klipper knows it only as a macro printer.cfg may define. Without one nothing is
        sent, so a panel's feedback beep leaves no "Unknown command" on the console at every key."""
        if "M300" not in self.macros():
            raise BadRequest(
                "Klipper does not know M300 (a [gcode_macro M300] in printer.cfg can define it); nothing sent", 200
            )
        return self.script(f"M300 P{ms} S{hz}")

    def jog(
        self, x: float | None = None, y: float | None = None, z: float | None = None, speed: int | None = None
    ) -> Any:
        axes = {a: v for a, v in (("x", x), ("y", y), ("z", z)) if v is not None}
        if not axes:
            raise ValueError("jog needs at least one axis")
        feed = speed if speed is not None else min(self.profile()["axes"][a]["speed"] for a in axes)
        return self.guarded(scripts.jog(axes, feed, scripts.MACROS["jog"] in self.macros()))

    def home(self, axes: Iterable[str] = ("x", "y", "z")) -> Any:
        return self.script(scripts.home(tuple(axes), scripts.MACROS["home"] in self.macros()))

    def feedrate(self, factor: float) -> Any:
        return self.script(f"M220 S{int(round(factor))}")

    def flowrate(self, factor: float) -> Any:
        return self.script(f"M221 S{int(round(factor))}")

    def tool_target(self, targets: dict[str, float]) -> Any:
        lines = []
        for tool, target in targets.items():
            index = int(tool[4:] or 0) if tool.startswith("tool") else 0
            lines.append(f"M104 {f'T{index} ' if index else ''}S{scripts.plain(target)}")
        return self.script("\n".join(lines))

    def bed_target(self, target: float) -> Any:
        return self.script(f"M140 S{scripts.plain(target)}")

    def extrude(self, amount: float, speed: int | None = None) -> Any:
        feed = speed if speed is not None else self.profile()["axes"]["e"]["speed"]
        return self.guarded(scripts.extrude(amount, feed, scripts.MACROS["extrude"] in self.macros()))

    def select_file(self, name: str, print_: bool = False) -> Any:
        if print_:
            return self.start(name)
        return self.script(f"M23 {file_path(name)}")  # virtual_sdcard opens it; print_stats names it

    def upload(
        self,
        name: str,
        handle: BinaryIO,
        select: bool = False,
        print_: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Any:
        """Multipart upload into the gcodes root, streamed; Moonraker starts it itself with print_."""
        file_path(name)
        fields = [("root", "gcodes"), ("print", "true" if print_ else "false")]
        body = MultipartBody(fields, name, handle, progress)
        reply = self.request(
            "POST",
            "server/files/upload",
            data=body,
            headers={"Content-Type": body.content_type},
            deadline_after_send=True,
        )
        stored = ((replies.unwrap(reply) or {}).get("item") or {}).get("path") or name
        if select and not print_:
            self.select_file(stored)
        return {"files": {"local": {"name": stored}}, "moonraker": reply}

    def system_command(self, action: str, source: str = "custom") -> Any:
        raise UsageError(f"OctoPrint's system commands {NO_KLIPPER_MEANING}")

    def firmware_restart(self) -> Any:
        self._macros = None  # a restart rereads Klipper's config: the macros may have changed
        return self.call("POST", "printer/firmware_restart", read_s=LONG_READ_S)

    def emergency_stop(self) -> Any:
        return self.call("POST", "printer/emergency_stop")
