"""Moonraker's session: requests and answers (one keep-alive session, long reads for scripts, typed errors),
status queries, G-code scripts, and which of octopanel's guard macros Klipper has."""

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

import requests

from octopanel.errors import BadRequest, KeyRejected, NotFound, PrinterError, ServerError
from octopanel.printers.httpclient import HttpClient
from octopanel.printers.moonraker import replies, scripts
from octopanel.printers.octoprint.http_body import error_json

if TYPE_CHECKING:
    from octopanel.settings import Settings

# Klipper answers a script once it has run it: PAUSE waits behind the job's current move (13.5 s seen behind
# a 134 mm move at F600), G28 until the head is home. Such requests get this long before they count as lost:
# under daemon/health.py's hung bound with the default timeouts (3 x 15 s + 5 s), so that the watchdog keeps
# being pinged while Klipper works.
LONG_READ_S = 30.0


class MoonrakerSession(HttpClient):
    """The plumbing under MoonrakerClient (client.py), which adds one method per endpoint."""

    server_name = "Moonraker"

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
        super().__init__(url, api_key or None, connect_timeout, read_timeout, verbose, log, now)
        self._macros: frozenset[str] | None = None  # Klipper's G-code macros, read once
        self._status: dict[str, Any] = {}
        self._status_at = float("-inf")

    @classmethod
    def from_settings(cls, settings: "Settings", verbose: int = 0) -> Any:
        """Moonraker needs no key from a trusted client: only the URL is required."""
        if not settings.url:
            settings.require_connection()
        assert settings.url is not None  # require_connection() raised otherwise
        return cls(settings.url, settings.api_key, settings.connect_timeout, settings.read_timeout, verbose)

    def raise_for_status(self, method: str, path: str, resp: requests.Response) -> None:
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

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return replies.unwrap(self.request(method, path, body, **kwargs))

    def query(self, *objects: str) -> dict[str, Any]:
        return (self.call("GET", "printer/objects/query?" + "&".join(quote(o) for o in objects)) or {}).get(
            "status"
        ) or {}

    def script(self, text: str) -> Any:
        """Run G-code lines as one script, atomically with respect to a job's lines."""
        return self.call("POST", "printer/gcode/script", {"script": text}, read_s=LONG_READ_S)

    def macros(self) -> frozenset[str]:
        """The names (upper case) of Klipper's G-code macros: octopanel's guards, an M300 printer.cfg may define
        (read once: they come from its config file)."""
        if self._macros is None:
            objects = (self.call("GET", "printer/objects/list") or {}).get("objects") or []
            self._macros = frozenset(
                str(o).split(" ", 1)[1].upper() for o in objects if str(o).startswith("gcode_macro ")
            )
        return self._macros

    def macro_version(self) -> Any:
        """The shipped jog macro's `version` variable, or None when it is missing."""
        if scripts.MACROS["jog"] not in self.macros():
            return None
        name = f"gcode_macro {scripts.MACROS['jog']}"
        return (self.query(name).get(name) or {}).get("version")
