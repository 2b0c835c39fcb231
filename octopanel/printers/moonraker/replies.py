"""Reading Moonraker's replies: the printer's state in octopanel's words, and Klipper's refusals in plain words.

API reference: https://moonraker.readthedocs.io/en/latest/web_api/
"""

import re
from typing import Any

from octopanel.printers.backend import PrinterState

# The objects every state read asks for (GET /printer/objects/query?print_stats&...).
STATE_OBJECTS = ("print_stats", "pause_resume", "toolhead", "extruder", "heater_bed", "webhooks")
# klippy/extras/print_stats.py's states; a finished or cancelled job leaves the printer free to move.
PRINT_STATES = {
    "standby": "idle",
    "complete": "idle",
    "cancelled": "idle",
    "printing": "printing",
    "paused": "paused",
    "error": "error",
}
TEXTS = {"idle": "Operational", "printing": "Printing", "paused": "Paused"}
# tornado cannot put a message with a newline in a status line, so Moonraker then says "Unknown"; the whole
# text is still in the traceback's last line ("HTTPError: HTTP 400: Extrude below minimum temp\nSee ...").
TRACEBACK_MESSAGE = re.compile(r"HTTPError: HTTP \d{3}: (.*)\Z", re.S)
UNKNOWN = "Unknown"
# A macro's action_raise_error arrives wrapped: "Error evaluating 'gcode_macro X:gcode': klippy.gcode.CommandError:
# octopanel: jog refused: ...": the macro's own words are what a person needs.
MACRO_WRAPPER = re.compile(r"^Error evaluating '[^']*': (?:[\w.]+Error: )?")


def from_status(status: dict[str, Any]) -> PrinterState:
    """The PrinterState for a /printer/objects/query `status`: Klipper's host state first (webhooks), then the
    job's (print_stats). A Klipper host starting up is not connected yet; shut down, it needs a restart."""
    hooks = status.get("webhooks") or {}
    host = hooks.get("state")
    message = " ".join(str(hooks.get("state_message") or "").split())
    if host == "startup":
        return PrinterState("disconnected", f"Offline: Klipper is starting ({message})", ("webhooks:startup",))
    if host in ("shutdown", "error"):
        return PrinterState("error", f"Error: Klipper {host} ({message})", (f"webhooks:{host}",))
    stats = status.get("print_stats") or {}
    job = str(stats.get("state") or "")
    name = PRINT_STATES.get(job)
    flags = (f"webhooks:{host}", f"print_stats:{job}")
    if name is None:
        return PrinterState("error", f"Error: unknown print state {job!r}", flags)
    if name == "error":
        return PrinterState("error", f"Error: {stats.get('message') or 'the print failed'}", flags)
    return PrinterState(name, TEXTS[name], flags)


def error_text(data: Any, fallback: str = "") -> str:
    """Klipper's words from a Moonraker error reply ({"error": {"code", "message", "traceback"}}), on one
    line: "Must home axis first: 10.000 0.000 0.000 [0.000]", or for a message with a newline, read from
    the traceback, "Extrude below minimum temp (See the 'min_extrude_temp' config option for details)"."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return " ".join(fallback.split())[:300]
    message = str(error.get("message") or "")
    if message in ("", UNKNOWN):
        match = TRACEBACK_MESSAGE.search(str(error.get("traceback") or "").rstrip())
        if match:
            message = match.group(1)
    lines = [line.strip() for line in MACRO_WRAPPER.sub("", message).splitlines() if line.strip()]
    if not lines:
        return UNKNOWN
    return lines[0] + (f" ({' '.join(lines[1:])})" if len(lines) > 1 else "")


def unwrap(data: Any) -> Any:
    """Moonraker wraps each answer in {"result": ...}."""
    return data.get("result", data) if isinstance(data, dict) else data


UNKNOWN_COMMAND = re.compile(r'^// Unknown command:\s*"(.*)"$')


def unknown_commands(store: Any, script: str) -> list[str]:
    """The commands Klipper called unknown in its answer to `script`, read from a /server/gcode_store reply:
    the responses after the last entry holding that script, up to the next command."""
    entries = (store.get("gcode_store") if isinstance(store, dict) else None) or []
    start = max(
        (i for i, e in enumerate(entries) if e.get("type") == "command" and e.get("message") == script), default=None
    )
    if start is None:
        return []
    found = []
    for entry in entries[start + 1 :]:
        if entry.get("type") == "command":
            break
        for line in str(entry.get("message") or "").splitlines():
            match = UNKNOWN_COMMAND.match(line.strip())
            if match:
                found.append(match.group(1))
    return found
