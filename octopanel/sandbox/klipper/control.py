# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""Driving a running KlipperSim through Moonraker's HTTP API: queries, G-code, what Klipper was sent, scenarios.

What Klipper was sent is Moonraker's gcode_store: it records every G-code script that reached Moonraker's
gcode/script endpoint (HTTP or websocket) as a "command" entry, before klippy runs it, and every line klippy
answered as a "response" (errors start with "!! "). It does not record a job's own lines, nor pause, resume
and cancel, which Moonraker sends to klippy as their own requests, not as G-code.
"""

import re
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import requests

from octopanel.sandbox.klipper.config import MIN_EXTRUDE_TEMP_C, print_gcode
from octopanel.sandbox.klipper.venvs import KlipperSimError

POLL_S = 0.05
HTTP_ERROR = re.compile(r"^tornado\.web\.HTTPError: HTTP \d+: ", re.MULTILINE)
COMMAND_ERROR = "CommandError: "  # klippy.gcode.CommandError (Kalico), gcode.CommandError (Klipper)
HTTP_TIMEOUT_S = 10.0
ACTIVE = ("printing", "paused")  # print_stats states with a job loaded that cancel ends


class KlipperRefused(KlipperSimError):
    """Klipper answered a G-code script with an error (HTTP 400); .message is Klipper's text."""

    def __init__(self, script: str, message: str) -> None:
        super().__init__(f"{script!r} refused: {message}")
        self.message = message


def error_text(response: requests.Response) -> str:
    """Klipper's message from a Moonraker error reply.

    Moonraker puts "Unknown" in place of a message holding a newline (it cannot go in an HTTP status line);
    the text is then at the traceback's end, after "tornado.web.HTTPError: HTTP 400: ". A macro's
    action_raise_error always arrives that way, wrapped: "Error evaluating 'gcode_macro NAME:gcode':
    klippy.gcode.CommandError: <the macro's text>"; this returns the macro's text alone."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip()
    message = str(error.get("message", ""))
    if message == "Unknown" and error.get("traceback"):
        message = HTTP_ERROR.split(str(error["traceback"]))[-1].strip()
    return message.rpartition(COMMAND_ERROR)[2]


class SimControl:
    """The HTTP side of KlipperSim (sim.py owns the processes: url, session, wait_ready, check_alive)."""

    url: str
    session: requests.Session

    def wait_ready(self, timeout: float = 60.0) -> None: ...
    def wait_klippy_state(self, state: str, timeout: float = 10.0) -> None: ...

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        return self.session.request(method, self.url + path, **kwargs)

    def _ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise KlipperSimError(f"{method} {path}: {response.status_code} {error_text(response)}")
        body = response.json()
        return body.get("result", body)  # /server/files/upload answers unwrapped

    def query(self, *objects: str) -> dict[str, dict[str, Any]]:
        """The status of printer objects, e.g. query("toolhead", "gcode_macro OCTOPANEL_JOG")."""
        names = "&".join(quote(name, safe="") for name in objects)
        return self._ok("GET", "/printer/objects/query?" + names)["status"]

    def objects(self) -> list[str]:
        return self._ok("GET", "/printer/objects/list")["objects"]

    def script(self, gcode: str, timeout: float = 60.0) -> None:
        """Run G-code (one or more lines) through POST /printer/gcode/script; KlipperRefused on an error."""
        response = self.request("POST", "/printer/gcode/script", json={"script": gcode}, timeout=timeout)
        if response.status_code == 400:
            raise KlipperRefused(gcode, error_text(response))
        if response.status_code != 200:
            raise KlipperSimError(f"gcode/script {gcode!r}: {response.status_code} {error_text(response)}")

    # -- what Klipper was sent -------------------------------------------------------------------

    def gcode_log(self) -> list[dict[str, Any]]:
        """Moonraker's gcode_store: {message, time, type: command|response} entries, oldest first."""
        return self._ok("GET", "/server/gcode_store")["gcode_store"]

    def mark(self) -> float:
        """The time of the newest gcode_store entry; pass it to sent_since() or responses_since()."""
        log = self.gcode_log()
        return log[-1]["time"] if log else 0.0

    def _since(self, mark: float, kind: str) -> list[str]:
        lines = []
        for entry in self.gcode_log():
            if entry["time"] > mark and entry["type"] == kind:
                lines += [line.strip() for line in entry["message"].splitlines() if line.strip()]
        return lines

    def sent_since(self, mark: float) -> list[str]:
        """The G-code lines sent to Klipper after mark, one per line of each script."""
        return self._since(mark, "command")

    def responses_since(self, mark: float) -> list[str]:
        """What Klipper answered after mark ("!! message" for an error, "// text" for information)."""
        return self._since(mark, "response")

    # -- state ---------------------------------------------------------------------------------

    def position(self) -> tuple[float, float, float, float]:
        """toolhead.position: where the moves sent so far end (queued ones included), as (x, y, z, e)."""
        x, y, z, e = self.query("toolhead")["toolhead"]["position"]
        return x, y, z, e

    def live_position(self) -> tuple[float, float, float, float]:
        """motion_report.live_position: where the head is now, between the queued moves' ends."""
        x, y, z, e = self.query("motion_report")["motion_report"]["live_position"]
        return x, y, z, e

    def state(self) -> str:
        return self.query("print_stats")["print_stats"]["state"]

    def wait_state(self, names: str | Iterable[str], timeout: float = 10.0) -> str:
        """Poll until print_stats.state is one of names; return it."""
        wanted = {names} if isinstance(names, str) else set(names)
        deadline = time.monotonic() + timeout
        while (state := self.state()) not in wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout} s print_stats.state is {state!r}, wanted one of {sorted(wanted)}")
            time.sleep(POLL_S)
        return state

    def wait_idle(self, timeout: float = 30.0) -> None:
        """M400: until every queued move has finished."""
        self.script("M400", timeout=timeout)

    # -- scenarios -----------------------------------------------------------------------------

    def home(self, homed_axes: str | None = None) -> None:
        """G28 unless x, y and z are homed already (about 5 s on the simulated printer)."""
        if homed_axes is None:
            homed_axes = self.query("toolhead")["toolhead"]["homed_axes"]
        if homed_axes != "xyz":
            self.script("G28")

    def start_print(self, n_moves: int = 120, name: str = "octopanel-test.gcode", gcode: str | None = None) -> str:
        """Upload a job of n_moves 1-second moves on X (config.print_gcode), or gcode, start it; return the state
        once printing. Homes first if needed (the job does not). Y and Z stay at config.PRINT_Y and PRINT_Z.

        print_stats says "complete" as soon as klippy has read the last line, with up to 2 s of moves still
        queued, so a job of a few moves may be "complete" by the first look; a job failing at once, "error"."""
        self.home()
        files = {"file": (name, print_gcode(n_moves) if gcode is None else gcode)}
        self._ok("POST", "/server/files/upload", files=files, data={"root": "gcodes"})
        self._ok("POST", "/printer/print/start", params={"filename": name})
        return self.wait_state(("printing", "complete", "error"))

    def heat_extruder(self, target: float = 200.0, at_least: float = MIN_EXTRUDE_TEMP_C + 5) -> float:
        """M104 to target, then wait until the extruder reads at_least (about 6 s to 175 °C); return it."""
        self.script(f"M104 S{target:g}")
        deadline = time.monotonic() + 60
        while (temp := self.query("extruder")["extruder"]["temperature"]) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"extruder at {temp} °C after 60 s, wanted {at_least} °C")
            time.sleep(0.2)
        return temp

    def emergency_stop(self) -> None:
        """POST /printer/emergency_stop (M112); returns once klippy is shut down."""
        self._ok("POST", "/printer/emergency_stop")
        self.wait_klippy_state("shutdown")

    def firmware_restart(self, timeout: float = 30.0) -> None:
        """POST /printer/firmware_restart; returns once klippy is ready again (unhomed, heaters off)."""
        self._ok("POST", "/printer/firmware_restart")
        time.sleep(0.2)  # Moonraker answers before klippy has left "ready"
        self.wait_ready(timeout)

    def reset(self, home: bool = True) -> None:
        """Back to idle: no job (cancelled, then standby), not paused, targets 0 and cooled below
        min_extrude_temp, factors 100 %, fan off, absolute mode, moves finished; homed (home=True) or as it was.

        Each step runs only when needed: with nothing to undo it is one query (up to 0.25 s: klippy answers
        queries on its subscription tick, webhooks.SUBSCRIPTION_REFRESH_TIME, while Moonraker is subscribed)."""
        names = ("webhooks", "print_stats", "pause_resume", "gcode_move", "fan", "extruder", "heater_bed", "toolhead")
        status = self.query(*names)
        if status["webhooks"]["state"] != "ready":
            self.firmware_restart()
            status = self.query(*names)
        cancel = status["print_stats"]["state"] in ACTIVE
        if cancel:
            self._ok("POST", "/printer/print/cancel")
            self.wait_state("cancelled", timeout=30)
        move, head = status["gcode_move"], status["toolhead"]
        lines = [
            line
            for needed, line in (
                (status["pause_resume"]["is_paused"], "CLEAR_PAUSE"),
                (status["print_stats"]["state"] != "standby", "SDCARD_RESET_FILE"),
                (status["extruder"]["target"] != 0, "M104 S0"),
                (status["heater_bed"]["target"] != 0, "M140 S0"),
                (move["speed_factor"] != 1, "M220 S100"),
                (move["extrude_factor"] != 1, "M221 S100"),
                (status["fan"]["speed"] != 0, "M106 S0"),
                (not move["absolute_coordinates"], "G90"),
                (not move["absolute_extrude"], "M82"),
                (cancel or head["print_time"] > head["estimated_print_time"], "M400"),
            )
            if needed
        ]
        if lines:
            self.script("\n".join(lines))
        if home:
            self.home(status["toolhead"]["homed_axes"])
        if status["extruder"]["can_extrude"]:
            self._wait_cold()

    def _wait_cold(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.query("extruder")["extruder"]["can_extrude"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the extruder can still extrude {timeout} s after its target went to 0")
            time.sleep(0.1)
