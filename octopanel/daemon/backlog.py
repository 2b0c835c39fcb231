"""The printer's physical jog backlog: a model of the moves it was sent and has not finished yet.

OctoPrint and Klipper answer a jog as soon as it is queued, so an unanswered request says nothing about motion
still to come. Each jog or extrusion is modelled as taking its length at its feed rate (the backend's own
choice: the request's speed, else the slowest profile speed of the axes moved), and the printer runs its moves
one after another, whatever the axis, as the firmware's planner does. Acceleration is ignored, so a real move
is a little slower than modelled; the backend's move_start_lag_s covers the time before a move into an empty
queue begins (OctoPrint's serial queue, Klipper's scheduling ahead).
"""

import math
from collections import deque
from typing import TYPE_CHECKING, Any

from octopanel.printers.backend import DEFAULT_SPEEDS

if TYPE_CHECKING:
    from octopanel.actions.registry import Call

EPSILON_MM = 1e-9


def axes_of(call: "Call") -> dict[str, float]:
    """{axis: signed mm} of a Call (its action's `moves`); {} for an action that moves nothing."""
    return call.action.axes_of(call.args)


def feed_of(call: "Call", axes: dict[str, float], profile: dict[str, Any] | None) -> float:
    """The feed rate (mm/min) OctoPrint sends with the move (printer/standard.py jog() and extrude())."""
    if call.args.get("speed") is not None:
        return float(call.args["speed"])
    speeds = (profile or {}).get("axes") or {}
    found = []
    for axis in axes:
        speed = (speeds.get(axis) or {}).get("speed")
        found.append(float(speed) if isinstance(speed, (int, float)) and speed > 0 else DEFAULT_SPEEDS[axis])
    return min(found) if found else DEFAULT_SPEEDS["z"]


class Motion:
    """The modelled timeline: moves (start, end, {axis: mm}) queued one after the other."""

    def __init__(self) -> None:
        self._moves: deque[tuple[float, float, dict[str, float]]] = deque()
        self.peak_mm: dict[str, float] = {}  # the largest backlog seen per axis, right after a move was added

    def add(self, now: float, axes: dict[str, float], feed_mm_min: float, start_lag_s: float) -> float:
        """A move the printer got at `now`: it starts once the previous ones are done, and into an empty queue
        `start_lag_s` later. Returns its end."""
        length = math.sqrt(sum(d * d for d in axes.values()))
        if length <= EPSILON_MM:
            return now
        start = max(now + start_lag_s, self.busy_until(now))
        end = start + length / (feed_mm_min / 60.0)
        self._moves.append((start, end, {a: abs(d) for a, d in axes.items()}))
        for axis in axes:
            self.peak_mm[axis] = max(self.peak_mm.get(axis, 0.0), self.backlog(axis, now))
        return end

    def busy_until(self, now: float) -> float:
        """When the last modelled move ends (now if none is left)."""
        self._prune(now)
        return self._moves[-1][1] if self._moves else now

    def backlog(self, axis: str, now: float) -> float:
        """Distance along `axis` (mm) the printer has been sent and has not travelled yet."""
        self._prune(now)
        left = 0.0
        for start, end, dists in self._moves:
            mm = dists.get(axis)
            if mm:
                left += mm if now <= start else mm * (end - now) / (end - start)
        return left

    def _prune(self, now: float) -> None:
        while self._moves and self._moves[0][1] <= now:
            self._moves.popleft()
