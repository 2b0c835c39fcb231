"""What the executor runs: a Job, its Stats, scaling a merged call, and the stale and distance-cap rules."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from octopanel.actions.registry import Call
from octopanel.daemon.backlog import EPSILON_MM
from octopanel.errors import SafetyError
from octopanel.values import Step


@dataclass
class Job:
    """One thing to do. `resolve(state)` picks the Call for the printer's state (or None: nothing bound)."""

    resolve: Callable[[Any], Any]
    created: float
    label: str = ""
    merge_key: Any = None  # equal keys may merge: their units add up
    units: int = 1
    unit_axes: dict = field(default_factory=dict)  # {axis: mm} of one unit, for the physical backlog cap
    retry_until: float | None = None  # pause: retried while OctoPrint is unreachable, until then
    needs_state: bool = True  # False: resolve(None) works and the action runs in any state (saves a request)
    reply: Callable[[dict], None] | None = None
    origin: str = ""  # device label or "socket": discard(origin) drops what an unplugged device queued
    max_age_s: float | None = None  # stale past this age when its turn comes; None: the executor's stale_s
    wanted: Callable[[], bool] | None = None  # False right before sending: the requester left, do not run it
    feedback: bool = False  # a beep or message: never holds up an action, never sent to a silent OctoPrint


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
    dropped_feedback: int = 0
    units_sent: dict = field(default_factory=dict)


def scale(call: Call, units: int) -> Call:
    """The call for `units` repetitions: distances and relative steps multiplied exactly (Decimal), other
    arguments kept (an absolute target stays what it is)."""
    if units == 1 or not call.mergeable:
        return call
    args = dict(call.args)
    for name, _axis in call.action.moves:
        if args.get(name) is not None:
            args[name] = float(Decimal(repr(float(args[name]))) * units)
    for name in call.action.steps:
        if isinstance(args.get(name), Step):
            args[name] = Step(Decimal(repr(float(args[name]))) * units)
    return type(call)(call.action, args)


def is_stale(job: Job, now: float, stale_s: float) -> bool:
    """Too old to run now: past its own max_age_s, else stale_s (a pause that is retried never is)."""
    limit = stale_s if job.max_age_s is None else job.max_age_s
    return job.retry_until is None and now - job.created > limit


def stale_error(job: Job, now: float, stale_s: float) -> SafetyError:
    limit = stale_s if job.max_age_s is None else job.max_age_s
    why = (
        f"stale_s={limit:g}); a press made during an outage is never replayed"
        if job.max_age_s is None
        else f"its limit is {limit:g} s); it is not run later, when its client may have given up"
    )
    return SafetyError(f"dropped: the request was {now - job.created:.1f} s old ({why}; nothing sent")


def fit(
    job: Job,
    tail: Job | None,
    others: Iterable[Job | None],
    backlog: Callable[[str, float], float],
    now: float,
    cap_mm: float,
) -> int:
    """How many of job.units keep every axis's travel still to come (`backlog(axis, now)`, the printer's
    modelled backlog, plus the `others` in flight and queued) within cap_mm. `tail`: the queued job it merges
    into; a detent that shrinks the travel still to come always fits."""
    base = {axis: backlog(axis, now) for axis in job.unit_axes}
    for other in others:
        if other is not None and other is not tail:
            for axis, mm in other.unit_axes.items():
                if axis in base:
                    base[axis] += abs(other.units) * mm
    held = tail.units if tail is not None else 0

    def fits(units: int) -> bool:
        return all(base[a] + abs(held + units) * mm <= cap_mm + EPSILON_MM for a, mm in job.unit_axes.items())

    keep, step = job.units, 1 if job.units > 0 else -1
    while keep and abs(held + keep) > abs(held) and not fits(keep):
        keep -= step
    return keep
