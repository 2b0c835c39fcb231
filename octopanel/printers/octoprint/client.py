"""OctoPrint REST client: one keep-alive session, a timeout on every call, typed errors.

API reference: https://docs.octoprint.org/en/master/api/index.html
"""

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import requests

from octopanel.errors import BadRequest, Busy, KeyRejected, NotFound, PrinterError, ServerError
from octopanel.printers.backend import PrinterState
from octopanel.printers.httpclient import REDACTED, HttpClient, environment_session, mask_url  # noqa: F401  (re-exported)
from octopanel.printers.octoprint.http_body import error_message
from octopanel.printers.octoprint.multipart import MultipartBody
from octopanel.printers.octoprint.state import from_flags
from octopanel.printers.octoprint.tuning import Tuning
from octopanel.printers.octoprint.urlpath import quote_file_path, quote_segment
from octopanel.values import GCODE_DECIMALS

if TYPE_CHECKING:
    from octopanel.settings import Settings


class Client(HttpClient):
    """One method per OctoPrint endpoint used; all requests share one requests.Session. A printers.backend."""

    server_name = "OctoPrint"
    kind = "octoprint"
    move_start_lag_s = 0.1  # OctoPrint's serial queue, then the firmware's planner
    refuses_motion_when_busy = True  # POST /api/printer/printhead: 409 unless operational and not printing

    def __init__(
        self,
        url: str,
        api_key: str | None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        verbose: int = 0,
        log: TextIO | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(url, api_key, connect_timeout, read_timeout, verbose, log, now)
        self._tuning = Tuning(now)

    @classmethod
    def from_settings(cls, settings: "Settings", verbose: int = 0) -> "Client":
        """The client for resolved settings; a ConfigError saying what is expected if URL or key is missing."""
        settings.require_connection()
        url = settings.url
        assert url is not None  # require_connection() raised otherwise
        return cls(url, settings.api_key, settings.connect_timeout, settings.read_timeout, verbose)

    def raise_for_status(self, method: str, path: str, resp: requests.Response) -> None:
        code = resp.status_code
        if code < 400:
            return
        message = self.redact(error_message(resp))  # an error page may echo the request headers
        where = f"{method} /{path.lstrip('/')}"
        if code == 403 or (code == 400 and "CSRF" in message):
            raise KeyRejected("OctoPrint rejected the API key (check it with 8checkcfg)", code, message)
        if code == 409:
            raise Busy(f"the printer refused: {message or 'it is busy or in the wrong state'}", code, message)
        if code == 404:
            raise NotFound(f"not found: {where}" + (f" ({message})" if message else ""), code, message)
        if code in (400, 415):
            raise BadRequest(f"OctoPrint did not accept {where}: {message}", code, message)
        if code >= 500:
            raise ServerError(
                f"OctoPrint failed on {where} (HTTP {code})" + (f": {message}" if message else ""), code, message
            )
        raise PrinterError(f"OctoPrint answered HTTP {code} to {where}: {message}", code, message)

    # -- information ----------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self.get("api/version")

    def connection(self) -> dict[str, Any]:
        return self.get("api/connection")

    def printer(self) -> dict[str, Any]:
        return self.get("api/printer")

    def job(self) -> dict[str, Any]:
        return self.get("api/job")

    def tool(self) -> dict[str, Any]:
        return self.get("api/printer/tool")

    def bed(self) -> dict[str, Any]:
        return self.get("api/printer/bed")

    def tuning(self) -> dict[str, Any]:
        """printers.backend's tuning(): targets from /api/printer, factors as this client set them (tuning.py)."""
        try:
            data = self.get("api/printer?exclude=state,sd")
        except Busy:
            self._tuning.forget()
            raise
        return self._tuning.read(data.get("temperature") or {})

    def files(self) -> dict[str, Any]:
        return self.get("api/files?recursive=true")

    def file_info(self, name: str) -> dict[str, Any]:
        return self.get(f"api/files/local/{quote_file_path(name)}")

    def system_commands(self) -> dict[str, Any]:
        return self.get("api/system/commands")

    def state(self) -> PrinterState:
        """The printer's PrinterState, from /api/printer or, when disconnected (409), /api/job."""
        try:
            data = self.get("api/printer?exclude=temperature,sd")
            state = data.get("state", {})
            return from_flags(state.get("flags"), state.get("text", ""))
        except Busy:
            self._tuning.forget()
            data = self.job()
            text = (data or {}).get("state", "")
            return PrinterState("error" if "error" in text.lower() else "disconnected", text)

    def profile(self) -> dict[str, Any]:
        """The active printer profile, cached for PROFILE_TTL_S: a daemon runs for months, and someone may
        invert an axis in OctoPrint meanwhile; a jog burst should not fetch it for every detent."""
        if self.profile_due():
            profiles = self.get("api/printerprofiles").get("profiles", {})
            chosen = next((p for p in profiles.values() if p.get("current")), None)
            chosen = chosen or next((p for p in profiles.values() if p.get("default")), None)
            return self.keep_profile(chosen or {})
        return self.cached_profile()

    # -- commands -------------------------------------------------------------------------

    def connect(self) -> Any:
        return self.post("api/connection", {"command": "connect"})

    def disconnect(self) -> Any:
        return self.post("api/connection", {"command": "disconnect"})

    def job_command(self, command: str, action: str | None = None) -> Any:
        body = {"command": command}
        if action is not None:
            body["action"] = action
        return self.post("api/job", body)

    def gcode(self, lines: Sequence[str]) -> Any:
        answer = self.post("api/printer/command", {"commands": list(lines)})
        self._tuning.sent_gcode(lines)
        return answer

    def beep(self, ms: int, hz: int) -> Any:
        return self.gcode([f"M300 P{ms} S{hz}"])

    def jog(
        self, x: float | None = None, y: float | None = None, z: float | None = None, speed: int | None = None
    ) -> Any:
        body: dict[str, Any] = {"command": "jog"}
        for axis, value in (("x", x), ("y", y), ("z", z)):
            if value is not None:
                body[axis] = plain(value)
        if len(body) == 1:
            raise ValueError("jog needs at least one axis")  # OctoPrint answers 500 here
        if speed is not None:
            body["speed"] = speed
        return self.post("api/printer/printhead", body)

    def home(self, axes: Iterable[str] = ("x", "y", "z")) -> Any:
        return self.post("api/printer/printhead", {"command": "home", "axes": list(axes)})

    def feedrate(self, factor: float) -> Any:
        # Any JSON float is multiplied by 100 by OctoPrint, so always send an integer percentage.
        answer = self.post("api/printer/printhead", {"command": "feedrate", "factor": int(round(factor))})
        self._tuning.set_factor("feedrate", factor)
        return answer

    def flowrate(self, factor: float) -> Any:
        answer = self.post("api/printer/tool", {"command": "flowrate", "factor": int(round(factor))})
        self._tuning.set_factor("flowrate", factor)
        return answer

    def tool_target(self, targets: dict[str, float]) -> Any:
        body = {"command": "target", "targets": {k: plain(v) for k, v in targets.items()}}
        answer = self.post("api/printer/tool", body)
        if "tool0" in targets:
            self._tuning.set_target("tool", plain(targets["tool0"]))
        return answer

    def bed_target(self, target: float) -> Any:
        answer = self.post("api/printer/bed", {"command": "target", "target": plain(target)})
        self._tuning.set_target("bed", plain(target))
        return answer

    def extrude(self, amount: float, speed: int | None = None) -> Any:
        body: dict[str, Any] = {"command": "extrude", "amount": plain(amount)}
        if speed is not None:
            body["speed"] = speed
        return self.post("api/printer/tool", body)

    def select_file(self, name: str, print_: bool = False) -> Any:
        return self.post(f"api/files/local/{quote_file_path(name)}", {"command": "select", "print": print_})

    def upload(
        self,
        name: str,
        handle: BinaryIO,
        select: bool = False,
        print_: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Any:
        """Multipart upload of open file `handle` to local storage, streamed; `progress(sent, total)` as it goes."""
        quote_file_path(name)  # the same check as a name in a URL: OctoPrint takes folders from it
        fields = [("select", "true" if select else "false"), ("print", "true" if print_ else "false")]
        body = MultipartBody(fields, name, handle, progress)
        return self.request(
            "POST", "api/files/local", data=body, headers={"Content-Type": body.content_type}, deadline_after_send=True
        )

    def system_command(self, action: str, source: str = "custom") -> Any:
        return self.post(f"api/system/commands/{quote_segment(source)}/{quote_segment(action)}", None)

    def firmware_restart(self) -> Any:
        """8control's board reset: the custom system command 'reset' (OctoPrint has no endpoint of its own)."""
        return self.system_command("reset")

    def emergency_stop(self) -> Any:
        return self.gcode(["M112"])  # OctoPrint sends M112 at once, ahead of its queue


def plain(number: object) -> int | float:
    """A number for a JSON body that OctoPrint writes into G-code with str(): at most GCODE_DECIMALS decimals
    (a merged jog may add up to 0.30000000000000004), whole numbers as ints (`X2`, not `X2.0`). A float so
    rounded is written without an exponent (1e-05 would read as X1 then an E word); nan and inf raise."""
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ValueError(f"expected a number, got {number!r}")
    if isinstance(number, int):
        return number
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {number!r}")
    number = round(number, GCODE_DECIMALS) + 0.0
    return int(number) if number.is_integer() else number
