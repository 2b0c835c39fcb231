"""What an action runs with (client, settings, output) and the one place state guards are applied."""

import json
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from octopanel.actions.registry import ANY, Action, Call
from octopanel.daemon import protocol
from octopanel.errors import Busy, SafetyError, UsageError
from octopanel.printers.backend import Backend, PrinterState
from octopanel.values import show

if TYPE_CHECKING:
    from octopanel.panel.router import Panel
    from octopanel.settings import Settings

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class Result:
    """What an action did: text for people, data for --json, and whether anything was sent."""

    __slots__ = ("text", "data", "sent")

    def __init__(self, text: str | None = None, data: Any = None, sent: bool = True) -> None:
        self.text, self.data, self.sent = text, data, sent

    def __repr__(self) -> str:
        return f"Result(text={self.text!r}, data={self.data!r}, sent={self.sent!r})"

    def as_json(self, action_name: str | None) -> Any:
        return protocol.result_data(action_name, self.sent, self.text, self.data)


class Context:
    """Everything an action needs; the CLI, the daemon and the control socket each build one.

    `panel` is the daemon's panel state (modes), None outside the daemon."""

    def __init__(
        self,
        client: Backend,
        settings: "Settings",
        out: TextIO | None = None,
        err: TextIO | None = None,
        tty: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        panel: "Panel | None" = None,
    ) -> None:
        self.client, self.settings, self.tty, self.sleep, self.panel = client, settings, tty, sleep, panel
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr

    @property
    def limits(self) -> dict[str, float]:
        return self.settings.limits

    def progress(self, text: str) -> None:
        """A one-line progress display, shown only on a terminal (scripts piping us see nothing)."""
        if self.tty:
            print(f"\r\x1b[K{text}", end="", file=self.err, flush=True)

    def progress_done(self) -> None:
        if self.tty:
            print(file=self.err, flush=True)


def invoke(call: Call, ctx: Context, state: PrinterState | None = None) -> Result:
    """Run a parsed Call after checking the printer state it needs (fetched unless given); returns a Result."""
    action = call.action
    kind = ctx.client.kind if ctx.client is not None else None
    if kind is not None:
        refusal = action.refusal_on(kind)
        if refusal:
            raise UsageError(refusal)
    run = action.run_on(kind)
    if state is None and action.backend_refuses and ctx.client.refuses_motion_when_busy:
        # The backend checks the state in the same request, with no window for a print to start in between
        # as there is after a separate read; that read would only cost a round trip (~5 ms a key press).
        # A backend that does not refuse (printers.backend) gets the state read below, before the move.
        try:
            return run(ctx, **call.args)
        except Busy:
            state = ctx.client.state()
            if state.name in action.states:
                raise  # refused for another reason: the backend's own words say which
    if action.states != ANY:
        state = state if state is not None else ctx.client.state()
        if state.name not in action.states:
            if action.skip_when_not:
                return Result(skip_message(action, state.name), sent=False)
            raise SafetyError(
                f"{action.name} refused: the printer is {describe(state.name)}"
                f" ({action.name} needs it {' or '.join(sorted(action.states))}); nothing sent"
            )
    return run(ctx, **call.args)


def skip_message(action: Action, state: str) -> str:
    """Why a skip_when_not action sent nothing in `state`, in its own words (Action.already, skip_word)."""
    if state in action.already:
        return f"already {state}: nothing sent"
    if state == "cancelling":
        return "the print is being cancelled: nothing sent"
    return f"not {action.skip_word} (printer is {describe(state)}): nothing sent"


def describe(state: str) -> str:
    return {"idle": "idle (operational, not printing)", "error": "in an error state"}.get(state, state)


def gcode_line(text: object) -> str:
    """Validate one G-code line: no newlines or control characters may smuggle in a second command."""
    text = str(text).strip()
    if not text:
        raise ValueError("empty G-code")
    if CONTROL_CHARS.search(text):
        raise ValueError(f"G-code must be one line without control characters, got {show(text)}")
    return text


def gcode_lines(value: object) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [gcode_line(item) for item in items]


def dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
