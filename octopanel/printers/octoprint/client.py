"""OctoPrint REST client: one keep-alive session, a timeout on every call, typed errors.

API reference: https://docs.octoprint.org/en/master/api/index.html
"""

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import requests
import urllib3

from octopanel.errors import BadRequest, Busy, KeyRejected, NotFound, PrinterError, ServerError, Unreachable
from octopanel.printers.backend import PrinterState
from octopanel.printers.octoprint.deadline import install as install_deadlines
from octopanel.printers.octoprint.http_body import (
    ERROR_MAX_BYTES,
    JSON_MAX_BYTES,
    error_message,
    parse_json,
    read_body,
    short_reason,
)
from octopanel.printers.octoprint.multipart import MultipartBody
from octopanel.printers.octoprint.state import from_flags
from octopanel.printers.octoprint.tuning import Tuning
from octopanel.printers.octoprint.urlpath import quote_file_path, quote_segment
from octopanel.values import GCODE_DECIMALS

if TYPE_CHECKING:
    from octopanel.settings import Settings

REDACTED = "***"
MIN_KEY_IN_WORDS = 8  # a shorter key masked inside words would mangle them ("e***ception")
URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")  # http://user:pw@host -> http://***@host
PROFILE_TTL_S = 60.0


class Client:
    """One method per OctoPrint endpoint used; all requests share one requests.Session. A printers.backend."""

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
        self.base = url.rstrip("/") + "/"
        self.api_key = api_key
        self.timeout = (connect_timeout, read_timeout)
        self.verbose = verbose
        self.log = log or sys.stderr
        self.session = environment_session(self.base)
        self._deadlines = install_deadlines(self.session)
        if api_key:
            self.session.headers["X-Api-Key"] = api_key
        self._now = now
        self._profile: dict[str, Any] | None = None
        self._profile_at = 0.0  # when _profile was fetched
        self._tuning = Tuning(now)

    @classmethod
    def from_settings(cls, settings: "Settings", verbose: int = 0) -> "Client":
        """The client for resolved settings; a ConfigError saying what is expected if URL or key is missing."""
        settings.require_connection()
        url = settings.url
        assert url is not None  # require_connection() raised otherwise
        return cls(url, settings.api_key, settings.connect_timeout, settings.read_timeout, verbose)

    def close(self) -> None:
        self.session.close()

    # -- plumbing -------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        max_bytes: int = JSON_MAX_BYTES,
        deadline_after_send: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request and return the response, its body read, whatever its status.

        The whole exchange has one deadline, read_timeout seconds (from when the body is sent, with
        deadline_after_send). Network failures and lateness raise Unreachable, an oversized body ServerError,
        a redirect PrinterError: the key is never sent on to wherever a redirect points."""
        url = self.base + path.lstrip("/")
        what = f"{method} /{path.lstrip('/')}"
        if self.verbose:
            body = "" if json_body is None else " " + json.dumps(json_body)
            print(f"> {method} {self.redact(url)}{body}", file=self.log)
        deadline = time.monotonic() + self.timeout[1]
        if deadline_after_send:
            self._deadlines.at, self._deadlines.after_send_s = None, self.timeout[1]
        else:
            self._deadlines.at, self._deadlines.after_send_s = deadline, None
        try:
            resp = self.session.request(
                method, url, json=json_body, timeout=self.timeout, stream=True, allow_redirects=False, **kwargs
            )
            if deadline_after_send:
                deadline = time.monotonic() + self.timeout[1]
            if self.verbose:
                self.show_exchange(resp)
            self.refuse_redirect(what, resp)
            limit = max_bytes if resp.status_code < 400 else ERROR_MAX_BYTES
            resp._content = read_body(resp, deadline, limit, f"OctoPrint at {self.redact(self.base)}, {what}")
            resp._content_consumed = True  # requests' own flag: .json() and .text now use the body read above
        except requests.Timeout as exc:
            raise Unreachable(f"OctoPrint at {self.redact(self.base)} did not answer in time") from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)):
                raise Unreachable(f"OctoPrint at {self.redact(self.base)} did not answer in time") from exc
            raise Unreachable(f"cannot reach OctoPrint at {self.redact(self.base)}: {short_reason(exc)}") from exc
        finally:
            self._deadlines.at = self._deadlines.after_send_s = None
        return resp

    def show_exchange(self, resp: requests.Response) -> None:
        print(f"< {resp.status_code} {resp.reason}", file=self.log)
        if self.verbose > 1:
            for key, value in resp.request.headers.items():
                shown = REDACTED if key.lower() == "authorization" else self.redact(value)  # type: ignore[arg-type]  # basic auth; we set str headers only
                print(f">> {key}: {shown}", file=self.log)
            for key, value in resp.headers.items():
                print(f"<< {key}: {self.redact(value)}", file=self.log)

    def refuse_redirect(self, what: str, resp: requests.Response) -> None:
        """A 3xx is an error naming the new place: following it would carry the key to another host."""
        if 300 <= resp.status_code < 400 and resp.status_code != 304:
            resp.close()
            location = self.redact(resp.headers.get("Location") or "nowhere given")
            raise PrinterError(
                f"OctoPrint at {self.redact(self.base)} answered {what} with a redirect (HTTP "
                f"{resp.status_code}) to {location}: not followed, nothing more sent; if that is "
                "where OctoPrint now lives, set url to it",
                resp.status_code,
                location,
            )

    def request(self, method: str, path: str, json_body: Any = None, **kwargs: Any) -> Any:
        """Send one request; return parsed JSON (or None for an empty body); raise typed errors."""
        resp = self.send(method, path, json_body, **kwargs)
        self.raise_for_status(method, path, resp)
        return parse_json(method, path, resp)

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

    def redact(self, text: str) -> str:
        """Mask URL credentials and the API key; a short key only as a whole token, not inside words."""
        text = mask_url(text)
        if not self.api_key:
            return text
        if len(self.api_key) >= MIN_KEY_IN_WORDS:
            return text.replace(self.api_key, REDACTED)
        return re.sub(r"(?<![\w-])" + re.escape(self.api_key) + r"(?![\w-])", REDACTED, text)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

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
        if self._profile is None or self._now() - self._profile_at >= PROFILE_TTL_S:
            profiles = self.get("api/printerprofiles").get("profiles", {})
            chosen = next((p for p in profiles.values() if p.get("current")), None)
            chosen = chosen or next((p for p in profiles.values() if p.get("default")), None)
            self._profile, self._profile_at = chosen or {}, self._now()
        return self._profile

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


def environment_session(base: str) -> requests.Session:
    """A Session that read the environment once, for `base`: proxies (with NO_PROXY), ~/.netrc, CA bundle.

    With requests' default trust_env, every request scans os.environ twice for proxies and looks for
    ~/.netrc again: half of the ~0.2 ms requests spends before a jog leaves. Every URL here shares
    `base`'s host, so one lookup gives what each request would have found."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(base))
    session.auth = requests.utils.get_netrc_auth(base)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


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


def mask_url(text: str) -> str:
    """`text` with the user:password of any URL in it masked."""
    return URL_CREDENTIALS.sub(r"\1" + REDACTED + "@", str(text))
