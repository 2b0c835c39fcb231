"""Runs actions one at a time, in order, on a worker thread: merging, stale-event and state-guard policy.

The daemon's select loop (daemon.py) only ever calls submit()/discard(); every HTTP request happens on
this module's single worker thread, so a slow or hung OctoPrint never blocks reading input.
"""

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Callable

from .actions.context import Result, invoke
from .errors import OctopanelError, PrinterError, SafetyError, Unreachable

log = logging.getLogger("octopanel.executor")
MAX_QUEUE = 256  # far more than a person can press; guards memory if OctoPrint hangs for long
PAUSE_RETRY_S = 0.5
RECOVERY_POLL_S = 1.0  # while OctoPrint is unreachable, how often an idle worker checks it is back
PROBE = object()  # _next's "nothing queued, check on OctoPrint" answer
SCALED = {"jog": ("x", "y", "z"), "ex": ("amount",)}  # per-unit distances multiplied when jobs merge


@dataclass
class Job:
    """One thing to do. `resolve(state)` picks the Call for the printer's state (or None: nothing bound)."""

    resolve: Callable[[Any], Any]
    created: float
    label: str = ""
    merge_key: Any = None  # equal keys may merge: their units add up
    units: int = 1
    unit_mm: float = 0.0  # distance of one unit, for the outstanding-distance cap
    retry_until: float | None = None  # pause: retried while OctoPrint is unreachable, until then
    needs_state: bool = True  # False: resolve(None) works and the action runs in any state (saves a request)
    reply: Callable[[dict], None] | None = None
    origin: str = ""  # device label or "socket": discard(origin) drops what an unplugged device queued
    max_age_s: float | None = None  # stale past this age when its turn comes; None: the executor's stale_s
    wanted: Callable[[], bool] | None = None  # False right before sending: the requester left, do not run it


@dataclass
class Stats:
    """Counters, for the status line, the tests and the benchmarks."""

    sent: int = 0
    merged: int = 0
    stale: int = 0
    capped_units: int = 0
    refused: int = 0
    failed: int = 0
    dropped_queue_full: int = 0
    units_sent: dict = field(default_factory=dict)


class Executor:
    """An ordered queue drained by one worker thread."""

    def __init__(self, ctx, stale_s=2.0, max_outstanding_mm=50.0, clock=time.monotonic, on_done=None):
        self.ctx = ctx
        self.stale_s = stale_s
        self.max_outstanding_mm = max_outstanding_mm
        self.clock = clock
        self.on_done = on_done or (lambda job, call, outcome: None)
        self.stats = Stats()
        self.last_state = None
        self.unreachable = False  # the last request could not reach OctoPrint
        self.trace = None  # --dry-run: trace(text) shows each gesture → action as it runs
        self.busy = False
        self._queue = deque()
        self._inflight_units = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._probe_first = True
        self._thread = threading.Thread(target=self._run, name="octopanel-executor", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, job):
        """Queue a job (never blocks). Units over the outstanding-distance cap are discarded, not delayed."""
        with self._cond:
            if job.merge_key is not None and job.unit_mm:
                limit = int(self.max_outstanding_mm // job.unit_mm + 1e-9)
                net = self._outstanding_units(job.merge_key)
                wanted = net + job.units
                if abs(wanted) > limit and abs(wanted) > abs(net):
                    # Only growth beyond the cap is cut; turning back always gets through.
                    keep = max(0, limit - abs(net)) * (1 if job.units > 0 else -1) if net * job.units >= 0 \
                        else job.units
                    self.stats.capped_units += abs(job.units - keep)
                    if keep == 0:
                        log.info("%s: outstanding distance cap reached, detent discarded", job.label)
                        return False
                    job.units = keep
            if len(self._queue) >= MAX_QUEUE:
                self.stats.dropped_queue_full += 1
                log.warning("%s: queue full, dropped", job.label)
                self._reply(job, {"ok": False, "error": "queue full"})
                return False
            self._queue.append(job)
            self._cond.notify()
            return True

    def discard(self, origin):
        """Drop every queued job from `origin` (an unplugged device): its motion must stop."""
        with self._cond:
            kept = [j for j in self._queue if j.origin != origin]
            dropped = len(self._queue) - len(kept)
            self._queue = deque(kept)
        return dropped

    def pending(self):
        with self._cond:
            return len(self._queue) + (1 if self.busy else 0)

    def wait_idle(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self.pending()

    def _outstanding_units(self, key):
        """Signed units queued or in flight for `key`: detents one way and back cancel out."""
        queued = sum(j.units for j in self._queue if j.merge_key == key)
        return queued + self._inflight_units.get(key, 0)

    def _is_stale(self, job, now):
        limit = self.stale_s if job.max_age_s is None else job.max_age_s
        return job.retry_until is None and now - job.created > limit

    def _next(self):
        """Pop the next job, merged with the compatible jobs right behind it (conserving the units).

        Returns (job or None, stale jobs): stale jobs never ride along with a fresh one into a merge.
        Returns (PROBE, []) first, then while OctoPrint is unreachable and nothing is queued every RECOVERY_POLL_S."""
        with self._cond:
            if self._probe_first:
                # Jog and home read no state (OctoPrint refuses them itself), so it is read once at the start:
                # the status line and the state LEDs are right before the first press, and an OctoPrint not up
                # yet (a Pi booting) is noticed and polled for until it answers.
                self._probe_first = False
                return PROBE, []
            while not self._queue and not self._stopping:
                if self.unreachable:
                    if not self._cond.wait(RECOVERY_POLL_S) and not self._queue:
                        return PROBE, []
                else:
                    self._cond.wait()
            if self._stopping:
                return None, []
            now = self.clock()
            group = [self._queue.popleft()]
            while group[0].merge_key is not None and self._queue and self._queue[0].merge_key == group[0].merge_key:
                group.append(self._queue.popleft())
            stale = [j for j in group if self._is_stale(j, now)]
            fresh = [j for j in group if not self._is_stale(j, now)]
            job = fresh[0] if fresh else None
            for other in fresh[1:]:
                job = replace(job, units=job.units + other.units, reply=job.reply or other.reply)
                self.stats.merged += 1
            if job is not None and job.merge_key is not None:
                self._inflight_units[job.merge_key] = job.units
            self.busy = True
            return job, stale

    def _run(self):
        while True:
            job, stale = self._next()
            if job is None and not stale:
                return
            try:
                for old in stale:
                    self.stats.stale += 1
                    age = self.clock() - old.created
                    self._finish(old, None, SafetyError(f"dropped: the request was {age:.1f} s old (stale_s="
                                                        f"{self.stale_s:g}); a press made during an outage is "
                                                        "never replayed"))
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
                    if isinstance(job, Job):
                        self._inflight_units.pop(job.merge_key, None)
                    self.busy = False

    def _probe(self):
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

    def _execute(self, job):
        while True:
            try:
                state = None
                if job.needs_state:
                    state = self.ctx.client.state()
                    self.last_state = state
                call = job.resolve(state)
                if call is None:
                    self.stats.refused += 1
                    self._finish(job, None, SafetyError(f"nothing is bound to {job.label} while the printer is "
                                                        f"{state.name if state else 'in this state'}: nothing sent"))
                    return
                if job.units == 0:
                    self._finish(job, call, Result("movements cancelled out: nothing sent", sent=False))
                    return
                call = scale(call, job.units)
                if job.wanted is not None and not job.wanted():
                    self._finish(job, None, SafetyError("not run: its requester is gone; nothing sent"))
                    return
                if self.trace is not None:
                    merged = f" (×{job.units} merged)" if job.units not in (1, -1) else ""
                    self.trace(f"{job.label}{merged} → {call}")
                result = invoke(call, self.ctx, state)
            except Unreachable as exc:
                self.unreachable = True
                if job.retry_until is not None and self.clock() < job.retry_until and not self._stopping:
                    time.sleep(PAUSE_RETRY_S)
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
                self.stats.sent += 1
                if job.merge_key is not None:
                    self.stats.units_sent[job.merge_key] = self.stats.units_sent.get(job.merge_key, 0) + job.units
            self._finish(job, call, result)
            return

    def _finish(self, job, call, outcome):
        if isinstance(outcome, Result):
            reply = {"ok": True, "action": call.action.name if call is not None else None, "sent": outcome.sent,
                     "message": outcome.text}
            if outcome.data is not None:
                reply["data"] = outcome.data
        else:
            reply = {"ok": False, "error": str(outcome), "exit": getattr(outcome, "exit_code", 1)}
        self._reply(job, reply)
        self.on_done(job, call, outcome)

    def _reply(self, job, reply):
        if job.reply is not None:
            try:
                job.reply(reply)
            except OSError:
                pass  # the socket client went away; the action still ran


def scale(call, units):
    """The call for `units` repetitions: distances multiplied exactly (Decimal), other arguments kept."""
    names = SCALED.get(call.action.name)
    if units == 1 or not names:
        return call
    args = dict(call.args)
    for name in names:
        if args.get(name) is not None:
            args[name] = float(Decimal(repr(args[name])) * units)
    return type(call)(call.action, args)
