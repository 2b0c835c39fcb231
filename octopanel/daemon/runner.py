"""Running one job on the worker: the state guard, the stale and requester checks, sending, retries, the reply."""

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from octopanel.actions.invoke import Context, Result, invoke
from octopanel.actions.registry import Call
from octopanel.daemon import protocol
from octopanel.daemon.backlog import Motion, axes_of, feed_of
from octopanel.daemon.jobs import Job, Stats, is_stale, scale, stale_error
from octopanel.errors import OctopanelError, SafetyError, Unreachable
from octopanel.printers.backend import DEFAULT_SPEEDS, PrinterState

PAUSE_RETRY_S = 0.5


class Runner:
    """The Executor's worker side (daemon/executor.py sets these attributes and owns the queue)."""

    ctx: Context
    stale_s: float
    clock: Callable[[], float]
    on_done: Callable[[Job | None, Call | None, Result | Exception | None], None]
    stats: Stats
    last_state: PrinterState | None
    unreachable: bool
    trace: Callable[[str], None] | None
    motion: Motion
    _queue: deque[Job]
    _inflight: Job | None
    _running: tuple[str, float] | None
    _cond: threading.Condition
    _stopping: bool

    def _drop_stale(self, job: Job) -> None:
        self.stats.stale += 1
        self._finish(job, None, stale_error(job, self.clock(), self.stale_s))

    def _action_waiting(self) -> bool:
        with self._cond:
            return any(not j.feedback for j in self._queue)

    def _probe(self) -> None:
        """At the start, and during an outage: notice OctoPrint's state (or return) without waiting for a press."""
        try:
            self.last_state = self.ctx.client.state()
        except Unreachable:
            self.unreachable = True
            return
        except OctopanelError:
            pass  # it answers again: that is all the status needs to know
        self.unreachable = False
        self.on_done(None, None, None)

    def _execute(self, job: Job) -> None:
        while True:
            axes, attempted = {}, False
            try:
                if job.feedback and (self.unreachable or self._action_waiting()):
                    self.stats.dropped_feedback += 1  # a beep is worth less than the action behind it
                    self._finish(
                        job, None, SafetyError("feedback dropped: an action is waiting, or OctoPrint does not answer")
                    )
                    return
                state = None
                if job.needs_state or self.unreachable:
                    # After a request went unanswered, OctoPrint answers once more before anything is sent:
                    # a request sent into a hung OctoPrint runs whenever it wakes up, however late.
                    state = self.ctx.client.state()
                    self.last_state, self.unreachable = state, False
                call = job.resolve(state)
                if call is None:
                    self.stats.refused += 1
                    self._finish(
                        job,
                        None,
                        SafetyError(
                            f"nothing is bound to {job.label} while the printer is "
                            f"{state.name if state else 'in this state'}: nothing sent"
                        ),
                    )
                    return
                if job.units == 0:
                    self._finish(job, call, Result("movements cancelled out: nothing sent", sent=False))
                    return
                call = scale(call, job.units)
                axes = axes_of(call)
                profile = self._profile() if axes else None
                if is_stale(job, self.clock(), self.stale_s):  # judged as it goes out, after any wait for OctoPrint
                    self._drop_stale(job)
                    return
                if job.wanted is not None and not job.wanted():
                    self._finish(job, None, SafetyError("not run: its requester is gone; nothing sent"))
                    return
                if self.trace is not None:
                    merged = f" (×{job.units} merged)" if job.units not in (1, -1) else ""
                    self.trace(f"{job.label}{merged} → would {call}")
                attempted = True
                result = invoke(call, self.ctx, state)
            except Unreachable as exc:
                self.unreachable = True
                if attempted and axes:
                    self._moved(axes, None)  # it may have been queued before the answer was lost
                if job.retry_until is not None and self.clock() < job.retry_until and not self._stopping:
                    time.sleep(PAUSE_RETRY_S)
                    self._running = (job.label, self.clock())  # each retry is a new attempt, bounded anew
                    continue
                self.stats.failed += 1
                self._finish(job, None, exc)
                return
            except OctopanelError as exc:
                self.unreachable = False
                self.stats.refused += 1
                self._finish(job, None, exc)
                return
            self.unreachable = False
            if result.sent:
                if axes:
                    self._moved(axes, feed_of(call, axes, profile))
                self.stats.sent += 1
                if job.merge_key is not None:
                    self.stats.units_sent[job.merge_key] = self.stats.units_sent.get(job.merge_key, 0) + job.units
            self._finish(job, call, result)
            return

    def _profile(self) -> dict[str, Any] | None:
        """The printer profile, for the model's feed rates (cached by the client); None if OctoPrint refuses it."""
        try:
            return self.ctx.client.profile()
        except Unreachable:
            raise
        except OctopanelError:
            return None

    def _moved(self, axes: dict[str, float], feed: float | None) -> None:
        """Put a sent move on the modelled timeline (feed None: unknown, the slowest default), in the same
        step as it stops counting as in flight, so that submit() never sees it twice or not at all."""
        with self._cond:
            feed = feed or min(DEFAULT_SPEEDS[a] for a in axes)
            self.motion.add(self.clock(), axes, feed, self.ctx.client.move_start_lag_s)
            self._inflight = None

    def _finish(self, job: Job, call: Call | None, outcome: Result | Exception) -> None:
        if isinstance(outcome, Result):
            reply = protocol.done(
                call.action.name if call is not None else None, outcome.sent, outcome.text, outcome.data
            )
        else:
            reply = protocol.failed(str(outcome), getattr(outcome, "exit_code", 1))
        self._reply(job, reply)
        self.on_done(job, call, outcome)

    def _reply(self, job: Job, reply: dict[str, Any]) -> None:
        if job.reply is not None:
            try:
                job.reply(reply)
            except OSError:
                pass  # the socket client went away; the action still ran
