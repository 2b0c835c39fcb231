"""`octopanel run --dry-run`: a client that prints each request instead of sending it."""

import json
import sys
from typing import Any, TextIO

import requests

from octopanel.printers.backend import PrinterState
from octopanel.printers.octoprint.client import Client
from octopanel.printers.octoprint.http_body import JSON_MAX_BYTES


class DryRunClient(Client):
    """Sends nothing: prints every request and answers reads with an assumed state and a hot hotend."""

    refuses_motion_when_busy = False  # nothing refuses here: the assumed state is checked before a move

    def __init__(self, state: str = "idle", hotend_c: float = 200.0, out: TextIO | None = None) -> None:
        super().__init__("http://dry-run.invalid", None)
        self.assumed = PrinterState(state)
        self.hotend_c = max(hotend_c, 200.0)
        self.out = out or sys.stdout

    def send(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        max_bytes: int = JSON_MAX_BYTES,
        deadline_after_send: bool = False,
        read_s: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        body = "" if json_body is None else " " + json.dumps(json_body)
        print(f"    → {method} /{path.lstrip('/')}{body}  (dry run: not sent)", file=self.out, flush=True)
        response = requests.Response()
        response.status_code, response._content = 204, b""
        return response

    def state(self) -> PrinterState:
        return self.assumed

    def tool(self) -> dict[str, Any]:
        return {"tool0": {"actual": self.hotend_c, "target": self.hotend_c}}

    def bed(self) -> dict[str, Any]:
        return {"bed": {"actual": 60.0, "target": 60.0}}

    def tuning(self) -> dict[str, Any]:
        """The assumed targets and factors (100 %), moved by what this dry run would have set."""
        result = self._tuning.read({"tool0": {"target": self.hotend_c}, "bed": {"target": 60.0}})
        for name in ("feedrate", "flowrate"):
            if result[name] is None:
                result[name] = 100
        return result

    def profile(self) -> dict[str, Any]:
        return {}
