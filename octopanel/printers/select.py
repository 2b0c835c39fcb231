"""Choosing the printer backend: `backend: octoprint | moonraker | auto`; auto asks the URL once and remembers.

Moonraker answers GET /server/info; OctoPrint answers 404 there. (/api/version tells nothing: Moonraker's
octoprint_compat serves it too.)
"""

from typing import Any, cast

from octopanel.errors import ConfigError, PrinterError, Unreachable
from octopanel.printers.backend import Backend
from octopanel.printers.httpclient import HttpClient
from octopanel.printers.octoprint.http_body import parse_json


def client_for(kind: str, settings: Any, verbose: int = 0) -> Backend:
    if kind == "moonraker":
        from octopanel.printers.moonraker.client import MoonrakerClient

        return cast(Backend, MoonrakerClient.from_settings(settings, verbose))
    from octopanel.printers.octoprint.client import Client

    return cast(Backend, Client.from_settings(settings, verbose))


def make_client(settings: Any, verbose: int = 0) -> Backend:
    """The backend the settings name; for `auto`, one that asks the URL on first use (a daemon may start
    before the printer's host answers) and then stays what it found."""
    if settings.backend != "auto":
        return client_for(settings.backend, settings, verbose)
    if not settings.url:
        settings.require_connection()
    return cast(Backend, AutoBackend(settings, verbose))


def detect(settings: Any) -> str:
    """ "moonraker" if settings.url answers GET /server/info as Moonraker does (or with Moonraker's 401 to a
    wrong key), else "octoprint" (a 404 there, or anything else: OctoPrint's own errors then say what is
    wrong); Unreachable when it does not answer. A bare HttpClient asks: on OctoPrint the daemon then never
    loads the Moonraker client's modules (about 1 MB of its resident memory)."""
    probe = HttpClient(settings.url, settings.api_key, settings.connect_timeout, settings.read_timeout)
    probe.server_name = "OctoPrint or Moonraker"  # not known yet: that is the question
    try:
        resp = probe.send("GET", "server/info")
        if resp.status_code != 200:
            return "moonraker" if resp.status_code == 401 else "octoprint"  # OctoPrint refuses a key with 403
        body = parse_json("GET", "server/info", resp)
    except Unreachable:
        raise
    except PrinterError:
        return "octoprint"
    finally:
        probe.close()
    info = body.get("result") if isinstance(body, dict) else None
    return (
        "moonraker"
        if isinstance(info, dict) and ("klippy_state" in info or "moonraker_version" in info)
        else "octoprint"
    )


class AutoBackend:
    """A Backend that detects which it is on first use, then delegates every call to that client."""

    def __init__(self, settings: Any, verbose: int = 0) -> None:
        self.settings, self.verbose = settings, verbose
        self._client: Backend | None = None

    def resolve(self) -> Backend:
        if self._client is None:
            self._client = client_for(detect(self.settings), self.settings, self.verbose)
        return self._client

    @property
    def kind(self) -> str:
        return self.resolve().kind

    @property
    def server_name(self) -> str:
        # Named in status lines and logs, which must not wait on a detection request to an absent server.
        return self._client.server_name if self._client is not None else "the printer's server"

    @property
    def move_start_lag_s(self) -> float:
        return self.resolve().move_start_lag_s

    @property
    def refuses_motion_when_busy(self) -> bool:
        return self.resolve().refuses_motion_when_busy

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)


def describe(settings: Any) -> list[str]:
    """8checkcfg's lines about the backend: which one (asked, for auto) and, on Klipper, the guard macros."""
    lines = []
    kind = settings.backend
    try:
        if kind == "auto" and settings.url:
            kind = detect(settings)
            lines.append(f"Backend:       {kind} (auto: as the URL answered)  [from {settings.sources['backend']}]")
        else:
            lines.append(f"Backend:       {kind}  [from {settings.sources['backend']}]")
        if kind == "moonraker" and settings.url:
            from octopanel.printers.moonraker.client import MoonrakerClient
            from octopanel.printers.moonraker.scripts import MACROS

            client = MoonrakerClient.from_settings(settings)
            try:
                have, version = client.macros(), client.macro_version()
            finally:
                client.close()
            missing = [m for m in MACROS.values() if m not in have]
            if missing:
                lines.append(
                    f"warning: Klipper lacks octopanel's guard macros ({', '.join(missing)}): moves are checked "
                    "before they are sent, but not inside Klipper; install them with "
                    "`octopanel install --klipper-macros DIR` and [include] the file in printer.cfg"
                )
            else:
                lines.append(f"Guard macros:  present (version {version})")
            if "M300" not in have:
                lines.append(
                    "Beep:          none: printer.cfg has no [gcode_macro M300], so 8beep, 8alarm and the panel's "
                    "feedback beep send nothing"
                )
    except (PrinterError, ConfigError) as exc:
        lines.append(f"Backend:       {kind} (could not ask the printer: {exc})")
    return lines
