"""Gestures and control-socket lines → executor jobs, through the keymap and the registry; panel modes."""

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from octopanel.actions.invoke import invoke
from octopanel.cli.fast import TIMEOUT_S
from octopanel.daemon import protocol
from octopanel.daemon.backlog import axes_of
from octopanel.daemon.executor import Job
from octopanel.errors import OctopanelError, UsageError

if TYPE_CHECKING:
    from octopanel.actions.invoke import Context
    from octopanel.actions.registry import Call, Registry
    from octopanel.daemon.executor import Executor
    from octopanel.panel.gestures import Gesture
    from octopanel.panel.keymap import Binding, Keymap
    from octopanel.panel.keymap_checks import Mode

log = logging.getLogger("octopanel.panel.router")
LED_ORDER = ("NUML", "CAPSL", "SCROLLL")
STATE_LEDS = {
    "NUML": frozenset({"printing", "pausing", "resuming", "cancelling", "finishing"}),
    "CAPSL": frozenset({"paused"}),
    "SCROLLL": frozenset({"disconnected", "error"}),
}
FEEDBACK_REFUSED = "beep 80 400"
FEEDBACK_MODE = "beep 40 2500"
FEEDBACK_MAX_AGE_S = 0.5  # a beep answers a press; later than this it answers nothing the user remembers
# A socket line waits its turn behind other clients' lines; that is not staleness (stale_s is for key
# presses). It is dropped, and told so, a little before the fast CLI stops waiting and reports "may have
# run"; a client that hung up earlier is caught by Job.wanted right before sending.
SOCKET_MAX_AGE_S = TIMEOUT_S - 5.0


class Panel:
    """The panel's own state: the current value of each mode and the shift layer being held."""

    def __init__(self, modes: "dict[str, Mode]") -> None:
        self.modes = {name: mode.default for name, mode in modes.items()}
        self.values = {name: list(mode.values) for name, mode in modes.items()}
        self.layer = ""

    def set_mode(self, name: str, value: object) -> Any:
        values = self.values[name]
        index = values.index(self.modes[name])
        if value == "next":
            index = (index + 1) % len(values)
        elif value == "prev":
            index = (index - 1) % len(values)
        else:
            index = [str(v) for v in values].index(str(value))
        self.modes[name] = values[index]
        return self.modes[name]

    def leds(self) -> dict[str, bool]:
        """LEDs lit for the first mode: none for its first value, then NumLock, Caps Lock, Scroll Lock."""
        if not self.modes:
            return {}
        name = next(iter(self.modes))
        index = self.values[name].index(self.modes[name])
        return {led: i < index for i, led in enumerate(LED_ORDER)}


class Dispatcher:
    """Turns each gesture or socket line into a Job; runs panel-only actions (modes) at once."""

    def __init__(
        self,
        keymap: "Keymap",
        registry: "Registry",
        ctx: "Context",
        executor: "Executor",
        clock: Callable[[], float] = time.monotonic,
        on_panel_change: Callable[[], None] | None = None,
    ) -> None:
        self.keymap, self.registry, self.ctx, self.executor = keymap, registry, ctx, executor
        self.clock = clock
        self.panel = Panel(keymap.modes)
        self.ctx.panel = self.panel
        self.on_panel_change = on_panel_change or (lambda: None)
        self.repeat_units: dict[
            tuple[str, str], int
        ] = {}  # (device, key) -> units sent by repeat during the current hold
        self.trace: Callable[[str], None] | None = None  # --dry-run: trace(text) shows gesture → action
        self._calls: dict[str, Call] = {}  # rendered binding line -> its Call (see call())

    def replace_keymap(self, keymap: "Keymap") -> None:
        """After a reload: keep the current mode values that still exist."""
        old = self.panel.modes
        self.keymap = keymap
        self.panel = Panel(keymap.modes)
        for name, value in old.items():
            if name in self.panel.modes and value in self.panel.values[name]:
                self.panel.modes[name] = value
        self.ctx.panel = self.panel
        self.repeat_units.clear()
        self._calls.clear()

    def call(self, line: str) -> "Call":
        """The Call of a rendered binding line. Parsed once: a key press would otherwise parse it twice (here
        and on the worker), ~40 µs each, and a line always parses the same way (nothing mutates a Call)."""
        call = self._calls.get(line)
        if call is None:
            call = self._calls[line] = self.registry.parse_line(line, self.ctx.limits)
        return call

    def device_lost(self, device: str) -> None:
        """Unplug: queued motion from the device is dropped and a held shift is released."""
        dropped = self.executor.discard(device)
        self.panel.layer = ""
        self.repeat_units = {k: v for k, v in self.repeat_units.items() if k[0] != device}
        if dropped:
            log.info("%s lost: %d queued action(s) dropped", device, dropped)

    def gesture(self, g: "Gesture") -> None:
        km = self.keymap
        if g.key in km.shifts and g.kind in ("press", "release"):
            self.panel.layer = km.shifts[g.key] if g.kind == "press" else ""
            return
        lookup: Callable[[str | None], Binding | None]
        if g.kind in ("rotary", "shuttle"):
            bindings = km.rotary.get(g.key, ())
            lookup = lambda state: km.lookup_rotary(g.key, state)  # noqa: E731
            units = g.steps
            merge_base = ("rotary", g.key)
        else:
            layer = self.panel.layer
            bindings = (km.bindings.get((layer, g.key, g.kind), ()) if layer else ()) or km.bindings.get(
                ("", g.key, g.kind), ()
            )
            lookup = lambda state, layer=layer: km.lookup(layer, g.key, g.kind, state)  # type: ignore[misc]  # noqa: E731  (a lambda with a default)
            units = 1
            merge_base = (layer, g.key)
            if g.kind in ("press", "double", "hold"):
                self.repeat_units.pop((g.device, g.key), None)
        if not bindings or units == 0:
            return
        modes = dict(self.panel.modes)
        first = self.call(bindings[0].render(modes))
        if all(b.action.panel_mode for b in bindings):
            self.run_now(first)
            return
        label = f"{g.key} {g.kind}" + (f" {g.steps:+d}" if g.kind in ("rotary", "shuttle") else "")
        job = Job(
            resolve=lambda state: self.resolve(lookup, state.name if state else None, modes, label),
            created=g.time,
            label=label,
            origin=g.device,
            needs_state=km.needs_state(bindings) or first.action.reads_state_first,
        )
        # Merge only when every alternative adds up (jog, ex, a +5 step): three `g M290` presses must stay three.
        if all(b.mergeable for b in bindings):
            unit_axes = unit_distance(first)
            unit_mm = max(unit_axes.values(), default=0.0)
            if g.kind == "repeat":
                limit = bindings[0].options.get("max_distance", km.settings["max_repeat_mm"])
                done = self.repeat_units.get((g.device, g.key), 0)
                if (done + 1) * unit_mm > limit + 1e-9:
                    return  # the hold has travelled as far as one hold may
                self.repeat_units[(g.device, g.key)] = done + 1
            job.merge_key = (*merge_base, bindings[0].render(modes))
            job.units, job.unit_axes = units, unit_axes
        if any(b.action.retries for b in bindings):
            job.retry_until = g.time + km.settings["pause_deadline_s"]
        self.executor.submit(job)

    def resolve(
        self, lookup: "Callable[[str | None], Binding | None]", state: str | None, modes: dict[str, Any], label: str
    ) -> "Call | None":
        binding = lookup(state)
        call = None if binding is None else self.call(binding.render(modes))
        if self.trace is not None and call is None:
            self.trace(f"{label} → (nothing bound while {state})")
        return call

    def request(
        self,
        kind: str,
        payload: Any,
        reply: Callable[[dict[str, Any]], None],
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        """A control-socket request (protocol.parse_request): parsed now (errors answered at once), run in order
        with the panel's jobs. `kind` "line": an action line (`jog z=1`); ARGV: the fast CLI's [name, *words].
        `wanted()` says whether the client still waits: checked right before sending, so a line whose client
        left is not run."""
        from_cli = kind == protocol.ARGV
        try:
            if from_cli:
                call = self.registry.parse(payload[0], payload[1:], self.ctx.limits)
            else:
                call = self.registry.parse_line(payload, self.ctx.limits)
        except UsageError as exc:
            reply(protocol.failed(str(exc), 2))
            return
        forced = bool(call.args.get("force"))
        if from_cli and (call.action.slow or call.action.local or not call.action.cli or forced):
            reply(protocol.run_locally())  # the CLI runs it itself (--force: a human at a shell)
            return
        if forced:
            reply(
                protocol.failed(
                    f"'{call.action.name}': --force is a human's override at a shell; a "
                    "control-socket line cannot carry it: nothing sent",
                    2,
                )
            )
            return
        if call.action.local:
            reply(protocol.failed(f"'{call.action.name}' works on the caller's files: run its 8xxx command instead", 2))
            return
        if call.action.slow:
            reply(
                protocol.failed(
                    f"'{call.action.name}' waits for a long time and would hold up the panel: run "
                    "it with its 8xxx command instead",
                    2,
                )
            )
            return
        if call.action.panel_mode:
            reply(self.run_now(call))
            return
        now = self.clock()
        retry = now + self.keymap.settings["pause_deadline_s"] if call.action.retries else None
        text = protocol.encode_argv(payload).strip() if from_cli else payload  # the line as it came
        self.executor.submit(
            Job(
                resolve=lambda state: call,
                created=now,
                label=f"socket: {text}",
                origin="socket",
                retry_until=retry,
                reply=reply,
                needs_state=call.action.reads_state_first,
                max_age_s=SOCKET_MAX_AGE_S,
                wanted=wanted,
            )
        )

    def run_now(self, call: "Call") -> dict[str, Any]:
        try:
            result = invoke(call, self.ctx)
        except OctopanelError as exc:
            return protocol.failed(str(exc), exc.exit_code)
        log.info("%s", result.text)
        self.feedback(FEEDBACK_MODE, result.text)
        self.on_panel_change()
        return protocol.done(call.action.name, False, result.text)

    def refused(self, job: Job, error: Exception) -> None:
        if job.label != "feedback":
            log.warning("%s: %s", job.label, error)
            self.feedback(FEEDBACK_REFUSED)

    def feedback(self, beep_line: str, message: str | None = None) -> None:
        """Optional beep and display message, queued behind the action they answer; the executor drops them
        rather than let them hold up a later action, or wait on an OctoPrint that does not answer."""
        fb = self.keymap.feedback
        calls = [self.registry.parse_line(beep_line, self.ctx.limits)] if fb["beep"] else []
        if message and fb["message"]:
            calls.append(self.registry.parse("msg", [message], self.ctx.limits))
        for call in calls:
            self.executor.submit(
                Job(
                    resolve=lambda state, c=call: c,  # type: ignore[misc]  # mypy cannot infer a lambda with a default
                    created=self.clock(),
                    label="feedback",
                    needs_state=False,
                    feedback=True,
                    max_age_s=FEEDBACK_MAX_AGE_S,
                )
            )


def unit_distance(call: "Call") -> dict[str, float]:
    """{axis: mm} of one unit of a mergeable call (x, y, z; e for ex), for the physical backlog cap."""
    return {axis: abs(mm) for axis, mm in axes_of(call).items()}
