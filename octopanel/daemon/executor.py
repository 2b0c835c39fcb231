"""Runs actions one at a time, in order, on a worker thread: merging, stale-event and state-guard policy.

The daemon's select loop (daemon/loop.py) only ever calls submit()/discard(); every HTTP request happens on
this module's single worker thread, so a slow or hung OctoPrint never blocks reading input.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from octopanel.actions.invoke import Context, Result, invoke
from octopanel.actions.registry import Call
from octopanel.daemon import protocol
from octopanel.daemon.backlog import DEFAULT_SPEEDS, Motion, axes_of, feed_of
from octopanel.daemon.jobs import Job, Stats, fit, is_stale, scale, stale_error  # noqa: F401  (Job: dispatch and tests import it here)
from octopanel.errors import OctopanelError, PrinterError, SafetyError, Unreachable
from octopanel.printers.backend import PrinterState

log = logging.getLogger("octopanel.daemon.executor")
MAX_QUEUE = 256  # far more than a person can press; guards memory if OctoPrint hangs for long
PAUSE_RETRY_S = 0.5
STOP_JOIN_S = 0.5  # how long stop() waits for the worker; SIGTERM must end the daemon within 2 s, on a busy Pi too
RECOVERY_POLL_S = 1.0  # while OctoPrint is unreachable, how often an idle worker checks it is back
PROBE = object()  # _next's "nothing queued, check on OctoPrint" answer
# Detents merge into the queued job before them only while it is this young: a merged job is judged stale
# by its first detent, so a long-waiting one must not keep swallowing fresh ones.
MERGE_SPAN_S = 0.5


class Executor:
    """An ordered queue drained by one worker thread."""

    def __init__(
        self,
        ctx: Context,
        stale_s: float = 2.0,
        max_outstanding_mm: float = 50.0,
        clock: Callable[[], float] = time.monotonic,
        on_done: Callable[[Job | None, Call | None, Result | Exception | None], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.stale_s = stale_s
        self.max_outstanding_mm = max_outstanding_mm
        self.clock = clock
        self.on_done = on_done or (lambda job, call, outcome: None)
        self.stats = Stats()
        self.last_state: PrinterState | None = None
        self.unreachable = False  # the last request could not reach OctoPrint
        self.trace: Callable[[str], None] | None = None  # --dry-run: trace(text) shows each gesture → action as it runs
        self.busy = False
        self._queue: deque[Job] = deque()
        self._inflight: Job | None = None  # the job being run, while its motion is not on the timeline yet
        self._running: tuple[str, float] | None = (
            None  # (label, clock time) of the attempt in progress: health.py judges a hung worker
        )
        self.motion = Motion()  # what the printer was sent and has not finished (backlog.py)
        self._cond = threading.Condition()
        self._stopping = False
        self._probe_first = True
        self._thread = threading.Thread(target=self._run, name="octopanel-executor", daemon=True)

    def start(self) -> "Executor":
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_JOIN_S) -> None:
        """Ask the worker to end and wait at most `timeout`: a worker stuck in a request must not hold up
        exit (it is a daemon thread, so the interpreter leaves it behind)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            running = self.running()  # once: the worker may finish between two calls
            log.warning("exiting while the worker is still busy with %s", running[0] if running else "?")

    def running(self) -> tuple[str, float] | None:
        """(label, seconds) of the attempt the worker is in, or None when it waits for work."""
        running = self._running
        return None if running is None else (running[0], self.clock() - running[1])

    def submit(self, job: Job) -> bool:
        """Queue a job (never blocks). Detents merge at once into the queued job before them (net, so that a
        wheel wiggled back and forth never fills the queue); units over the physical backlog cap are
        discarded, not delayed."""
        with self._cond:
            tail = self._queue[-1] if self._queue else None
            joins = (
                job.merge_key is not None
                and tail is not None
                and tail.merge_key == job.merge_key
                and tail.origin == job.origin
                and tail.reply is None
                and job.reply is None
                and tail.wanted is None
                and job.wanted is None
                and job.created - tail.created <= MERGE_SPAN_S
            )
            if job.unit_axes:
                keep = fit(
                    job,
                    tail if joins else None,
                    [*self._queue, self._inflight],
                    self.motion.backlog,
                    self.clock(),
                    self.max_outstanding_mm,
                )
                if keep != job.units:
                    self.stats.capped_units += abs(job.units - keep)
                    if keep == 0:
                        log.info("%s: outstanding distance cap reached, detent discarded", job.label)
                        return False
                    job.units = keep
            if joins and tail is not None:  # joins implies a tail; mypy cannot see it
                tail.units += job.units
                self.stats.merged += 1
                if tail.units == 0:
                    self._queue.pop()  # wiggled back to where it was queued from: nothing to send
                return True
            if len(self._queue) >= MAX_QUEUE:
                self.stats.dropped_queue_full += 1
                log.warning("%s: queue full, dropped", job.label)
                self._reply(job, protocol.failed("queue full; nothing sent", 1))
                return False
            self._queue.append(job)
            self._cond.notify()
            return True

    def discard(self, origin: str) -> int:
        """Drop every queued job from `origin` (an unplugged device): its motion must stop."""
        with self._cond:
            kept = [j for j in self._queue if j.origin != origin]
            dropped = len(self._queue) - len(kept)
            self._queue = deque(kept)
        return dropped

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self.busy else 0)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self.pending()

    def _next(self) -> tuple[Any, list[Job]]:
        """Pop the next job, merged with the compatible jobs right behind it (conserving the units).

        Returns (job or None, stale jobs): stale jobs never ride along with a fresh one into a merge.
        Returns (PROBE, []) first, then while OctoPrint is unreachable and nothing is queued every RECOVERY_POLL_S."""
        with self._cond:
            if self._probe_first:
                # Jog and home read no state (OctoPrint refuses them itself), so it is read once at the start:
                # the status line and the state LEDs are right before the first press, and an OctoPrint not up
                # yet (a Pi booting) is noticed and polled for until it answers.
                self._probe_first = False
                self._running = ("state check", self.clock())
                return PROBE, []
            while not self._queue and not self._stopping:
                if self.unreachable:
                    if not self._cond.wait(RECOVERY_POLL_S) and not self._queue:
                        self._running = ("state check", self.clock())
                        return PROBE, []
                else:
                    self._cond.wait()
            if self._stopping:
                return None, []
            now = self.clock()
            group = [self._queue.popleft()]
            while group[0].merge_key is not None and self._queue and self._queue[0].merge_key == group[0].merge_key:
                group.append(self._queue.popleft())
            stale = [j for j in group if is_stale(j, now, self.stale_s)]
            fresh = [j for j in group if not is_stale(j, now, self.stale_s)]
            job = fresh[0] if fresh else None
            for other in fresh[1:]:
                assert job is not None  # fresh is not empty
                job = replace(job, units=job.units + other.units, reply=job.reply or other.reply)
                self.stats.merged += 1
            self._inflight = job
            self.busy = True
            self._running = (job.label if job is not None else "stale presses", now)
            return job, stale

    def _run(self) -> None:
        while True:
            job, stale = self._next()
            if job is None and not stale:
                return
            try:
                for old in stale:
                    self._drop_stale(old)
                if job is PROBE:
                    self._probe()
                elif job is not None:
                    self._execute(job)
            except Exception as exc:  # a bug in one action must not kill the panel, nor leave a client waiting
                log.exception("%s: unexpected error", getattr(job, "label", "?"))
                self.stats.failed += 1
                if isinstance(job, Job):
                    self._finish(job, None, PrinterError(f"internal error: {type(exc).__name__}: {exc}"))
            finally:
                with self._cond:
                    self._inflight = self._running = None
                    self.busy = False

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
            self.motion.add(self.clock(), axes, feed or min(DEFAULT_SPEEDS[a] for a in axes))
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
