"""The Klipper backend: Moonraker's HTTP API, one keep-alive session, a deadline on every call, typed errors.

API reference: https://moonraker.readthedocs.io/en/latest/web_api/ . Klipper moves whenever told, even mid-job,
so this backend does not refuse motion itself (invoke() reads the state first) and sends every move as one
guarded script (scripts.py).
"""

import time
from typing import Any
from urllib.parse import quote

from octopanel.errors import BadRequest, KeyRejected, NotFound, PrinterError, ServerError, UsageError
from octopanel.printers.backend import PrinterState
from octopanel.printers.httpclient import HttpClient
from octopanel.printers.moonraker import replies, scripts
from octopanel.printers.octoprint.http_body import error_json
from octopanel.printers.octoprint.multipart import MultipartBody
from octopanel.printers.octoprint.urlpath import file_path

PROFILE_TTL_S = 60.0
# Klipper answers a query on its next status tick (0.25 s while Moonraker is subscribed): the temperatures a
# state read just fetched serve a tool() or bed() read this soon after (8ex reads the state, then the hotend).
STATUS_REUSE_S = 1.0
# Klipper answers a script once it has run it: PAUSE waits behind the job's current move (13.5 s seen behind
# a 134 mm move at F600), G28 until the head is home. Such requests get this long before they count as lost:
# under daemon/health.py's hung bound with the default timeouts (3 x 15 s + 5 s), so that the watchdog keeps
# being pinged while Klipper works.
LONG_READ_S = 30.0
# OctoPrint's default jog and extrusion speeds (mm/min), capped by the toolhead's own limits.
DEFAULT_SPEEDS = {"x": 6000.0, "y": 6000.0, "z": 200.0, "e": 300.0}
GCODE_STORE_READ = 100  # console entries read back after raw G-code: the script's own and what followed
NO_KLIPPER_MEANING = "has no meaning on Klipper through Moonraker (an OctoPrint command); nothing sent"


class MoonrakerClient(HttpClient):
    """One method per Moonraker endpoint used; a printers.backend."""

    server_name = "Moonraker"
    kind = "moonraker"
    refuses_motion_when_busy = False  # Klipper accepts a jog mid-print and slots it between the job's moves

    def __init__(self, url, api_key, connect_timeout=5.0, read_timeout=10.0, verbose=0, log=None, now=time.monotonic):
        super().__init__(url, api_key or None, connect_timeout, read_timeout, verbose, log, now)
        self._profile: dict[str, Any] | None = None
        self._profile_at = 0.0
        self._macros: frozenset[str] | None = None  # the guard macros Klipper has, read once
        self._status: dict[str, Any] = {}
        self._status_at = float("-inf")

    @classmethod
    def from_settings(cls, settings, verbose=0):
        """Moonraker needs no key from a trusted client: only the URL is required."""
        if not settings.url:
            settings.require_connection()
        return cls(settings.url, settings.api_key, settings.connect_timeout, settings.read_timeout, verbose)

    # -- plumbing -------------------------------------------------------------------------

    def raise_for_status(self, method, path, resp):
        code = resp.status_code
        if code < 400:
            return
        message = self.redact(replies.error_text(error_json(resp), resp.text or ""))
        where = f"{method} /{path.lstrip('/').split('?')[0]}"
        if code in (401, 403):
            raise KeyRejected("Moonraker rejected the API key (check it with 8checkcfg)", code, message)
        if code == 404:
            raise NotFound(f"not found: {where}" + (f" ({message})" if message else ""), code, message)
        if code == 400:
            raise BadRequest(f"Klipper refused it: {message}", code, message)
        if code >= 500:
            raise ServerError(f"Moonraker failed on {where} (HTTP {code}): {message}", code, message)
        raise PrinterError(f"Moonraker answered HTTP {code} to {where}: {message}", code, message)

    def call(self, method, path, body=None, **kwargs):
        return replies.unwrap(self.request(method, path, body, **kwargs))

    def query(self, *objects: str) -> dict[str, Any]:
        return (self.call("GET", "printer/objects/query?" + "&".join(quote(o) for o in objects)) or {}).get(
            "status"
        ) or {}

    def script(self, text: str) -> Any:
        """Run G-code lines as one script, atomically with respect to a job's lines."""
        return self.call("POST", "printer/gcode/script", {"script": text}, read_s=LONG_READ_S)

    def macros(self) -> frozenset[str]:
        """Which of octopanel's guard macros Klipper has (read once: they come from its config file)."""
        if self._macros is None:
            objects = (self.call("GET", "printer/objects/list") or {}).get("objects") or []
            names = {str(o).split(" ", 1)[1].upper() for o in objects if str(o).startswith("gcode_macro ")}
            self._macros = frozenset(m for m in scripts.MACROS.values() if m in names)
        return self._macros

    def macro_version(self) -> Any:
        """The shipped jog macro's `version` variable, or None when it is missing."""
        if scripts.MACROS["jog"] not in self.macros():
            return None
        name = f"gcode_macro {scripts.MACROS['jog']}"
        return (self.query(name).get(name) or {}).get("version")

    # -- information ----------------------------------------------------------------------

    def state(self) -> PrinterState:
        """Always read afresh (every move is judged on it); the first read also fetches the limits for
        profile(), in the same query."""
        profile_due = self._profile is None or self._now() - self._profile_at >= PROFILE_TTL_S
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

    def profile(self):
        """Feed rates per axis (mm/min) in OctoPrint's profile shape, from Klipper's limits: the jog speed
        and the backlog model's. Cached for PROFILE_TTL_S."""
        if self._profile is None or self._now() - self._profile_at >= PROFILE_TTL_S:
            self._set_profile(self.query("configfile=settings"))
        return self._profile

    def _set_profile(self, status):
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
        self._profile, self._profile_at = {"axes": axes}, self._now()

    def version(self):
        server = self.call("GET", "server/info") or {}
        printer = self.call("GET", "printer/info") or {}
        app = printer.get("app") or "Klipper"
        text = f"Moonraker {server.get('moonraker_version')}, {app} {printer.get('software_version') or ''}".strip()
        return {"api": server.get("api_version_string"), "server": server.get("moonraker_version"), "text": text}

    def connection(self):
        state = self.state()
        info = self.call("GET", "server/info") or {}
        return {"current": {"state": state.text, "port": None}, "klippy_state": info.get("klippy_state")}

    def job(self):
        status = self.query("print_stats", "virtual_sdcard", "webhooks")
        job, card = status.get("print_stats") or {}, status.get("virtual_sdcard") or {}
        return {
            "job": {"file": {"name": job.get("filename") or None}},
            "progress": {"completion": 100.0 * float(card.get("progress") or 0.0)},
            "state": replies.from_status(status).text,
            "print_stats": job,
        }

    def recent(self, name):
        """One object's status: from the last state read if it is younger than STATUS_REUSE_S, else asked."""
        if name in self._status and self._now() - self._status_at < STATUS_REUSE_S:
            return self._status[name] or {}
        return self.query(name).get(name) or {}

    def tool(self):
        extruder = self.recent("extruder")
        return {
            "tool0": {
                "actual": extruder.get("temperature"),
                "target": extruder.get("target"),
                "can_extrude": extruder.get("can_extrude"),
            }
        }

    def bed(self):
        bed = self.recent("heater_bed")
        return {"bed": {"actual": bed.get("temperature"), "target": bed.get("target")}}

    def files(self):
        listed = self.call("GET", "server/files/list?root=gcodes") or []
        return {
            "files": [
                {"name": f["path"].rsplit("/", 1)[-1], "path": f["path"], "type": "machinecode", "size": f.get("size")}
                for f in listed
                if isinstance(f, dict) and f.get("path")
            ]
        }

    def file_info(self, name):
        return self.call("GET", "server/files/metadata?filename=" + quote(file_path(name)))

    def system_commands(self):
        raise UsageError(f"OctoPrint's system commands {NO_KLIPPER_MEANING}")

    # -- commands -------------------------------------------------------------------------

    def connect(self):
        raise UsageError(f"connecting to a serial port {NO_KLIPPER_MEANING}")

    def disconnect(self):
        raise UsageError(f"disconnecting from a serial port {NO_KLIPPER_MEANING}")

    def job_command(self, command, action=None):
        if command == "start":
            name = (self.query("print_stats").get("print_stats") or {}).get("filename")
            if not name:
                raise UsageError("no file is selected: select one with 8fselect; nothing sent")
            return self.start(name)
        if command == "pause" and action is None:  # the raw toggle: Klipper has none, so read which it is
            action = "resume" if self.state().name == "paused" else "pause"
        paths = {("pause", "pause"): "printer/print/pause", ("pause", "resume"): "printer/print/resume"}
        path = paths.get((command, action)) or {"cancel": "printer/print/cancel"}.get(command)
        if path is None:
            raise UsageError(f"the job command {command!r} {NO_KLIPPER_MEANING}")
        return self.call("POST", path, read_s=LONG_READ_S)

    def start(self, name):
        return self.call("POST", "printer/print/start?filename=" + quote(file_path(name)), read_s=LONG_READ_S)

    def gcode(self, lines):
        """Raw lines as one script. Klipper answers 200 to a command it does not know and only says so on its
        console ('// Unknown command:"M300"'): that is read back, so that it is not reported as done."""
        text = "\n".join(lines)
        result = self.script(text)
        unknown = replies.unknown_commands(self.call("GET", f"server/gcode_store?count={GCODE_STORE_READ}"), text)
        if unknown:
            raise BadRequest(
                f"Klipper does not know {', '.join(unknown)} and ignored it (a [gcode_macro] in printer.cfg can "
                "define it)" + ("; the other lines ran" if len(lines) > len(unknown) else ""),
                200,
            )
        return result

    def jog(self, x=None, y=None, z=None, speed=None):
        axes = {a: v for a, v in (("x", x), ("y", y), ("z", z)) if v is not None}
        if not axes:
            raise ValueError("jog needs at least one axis")
        feed = speed if speed is not None else min(self.profile()["axes"][a]["speed"] for a in axes)
        return self.script(scripts.jog(axes, feed, scripts.MACROS["jog"] in self.macros()))

    def home(self, axes=("x", "y", "z")):
        return self.script(scripts.home(tuple(axes), scripts.MACROS["home"] in self.macros()))

    def feedrate(self, factor):
        return self.script(f"M220 S{int(round(factor))}")

    def flowrate(self, factor):
        return self.script(f"M221 S{int(round(factor))}")

    def tool_target(self, targets):
        lines = []
        for tool, target in targets.items():
            index = int(tool[4:] or 0) if tool.startswith("tool") else 0
            lines.append(f"M104 {f'T{index} ' if index else ''}S{scripts.plain(target)}")
        return self.script("\n".join(lines))

    def bed_target(self, target):
        return self.script(f"M140 S{scripts.plain(target)}")

    def extrude(self, amount, speed=None):
        feed = speed if speed is not None else self.profile()["axes"]["e"]["speed"]
        return self.script(scripts.extrude(amount, feed, scripts.MACROS["extrude"] in self.macros()))

    def select_file(self, name, print_=False):
        if print_:
            return self.start(name)
        return self.script(f"M23 {file_path(name)}")  # virtual_sdcard opens it; print_stats names it

    def upload(self, name, handle, select=False, print_=False, progress=None):
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

    def system_command(self, action, source="custom"):
        raise UsageError(f"OctoPrint's system commands {NO_KLIPPER_MEANING}")

    def firmware_restart(self):
        self._macros = None  # a restart rereads Klipper's config: the macros may have changed
        return self.call("POST", "printer/firmware_restart", read_s=LONG_READ_S)

    def emergency_stop(self):
        return self.call("POST", "printer/emergency_stop")
