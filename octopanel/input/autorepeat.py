"""A terminal's key bytes -> key down and up events, a release inferred when the terminal's autorepeat stops.

A terminal reports a key only as the characters it types: once when pressed, then again and again while it
is held (autorepeat), and never its release. A byte of the same key within the autorepeat window after the
previous one means the key is still down; silence means it came up. A tap is certain only once the
autorepeat delay has passed without a repeat, so every event is handed on ``LAG_S`` after it happened,
stamped with that later moment: the daemon then sees a keyboard that is LAG_S behind the terminal but
exact in its timing, so its own rules for press, hold, repeat and double apply unchanged.
"""

from collections import deque
from dataclasses import dataclass

# The delay before a held key starts repeating: X's default (`xset q`: 660 ms) is the longest of the common
# defaults (GNOME 500 ms, KDE 600 ms, the Linux console 250 ms). A key with no second byte by then was tapped.
AUTOREPEAT_DELAY_S = 0.66
# The shortest common delay (the Linux console's 250 ms): the same key again sooner is a second press (a
# double press), not a repeat.
AUTOREPEAT_MIN_DELAY_S = 0.25
# The slowest common repeat interval (the Linux console's ~11 per second; X repeats at 25, GNOME at 33).
AUTOREPEAT_INTERVAL_S = 0.1
# Repeats that stop for this long mean the key came up (one and a half of the slowest interval).
REPEAT_GAP_S = 0.15
TAP_RELEASE_S = AUTOREPEAT_DELAY_S + 0.04  # no repeat within this after the first byte: a tap
TAP_S = 0.05  # how long a tap is shown as held: a typical keystroke
LAG_S = TAP_RELEASE_S - TAP_S  # a tap's release is known by the time it is due


@dataclass
class _Held:
    code: int
    first: float
    last: float
    repeating: bool = False


class KeyTracker:
    """Key bytes in (``key(code, now)``), timed (stamp, code, value) key events out (``due(now)``).

    Only one key is down at a time, as in a terminal: another key's byte ends the previous key."""

    def __init__(self) -> None:
        self._held: _Held | None = None
        self._events: deque[tuple[float, int, int]] = deque()  # (moment it happened, code, 1 or 0)
        self._shown_down: set[int] = set()  # keys handed on down and not yet up

    def key(self, code: int, now: float) -> None:
        """A byte (or sequence) of key `code` arrived from the terminal at `now`."""
        self._settle(now)
        held = self._held
        if held is not None and held.code == code:
            if held.repeating or now - held.first >= AUTOREPEAT_MIN_DELAY_S:
                held.repeating, held.last = True, now
                return
            self._release(held.first + min(TAP_S, (now - held.first) / 2))  # pressed again: a second press
        elif held is not None:
            self._release(min(self._release_time(held), now))
        self._events.append((now, code, 1))
        self._held = _Held(code, now, now)

    def due(self, now: float) -> list[tuple[float, int, int]]:
        """The events whose moment + LAG_S has come, each stamped with that moment + LAG_S, in order."""
        self._settle(now)
        out = []
        while self._events and self._events[0][0] + LAG_S <= now:
            moment, code, value = self._events.popleft()
            out.append((moment + LAG_S, code, value))
            (self._shown_down.add if value else self._shown_down.discard)(code)
        return out

    def deadline(self) -> float | None:
        """When due() or the release inference next has something to do, or None."""
        times = [self._events[0][0] + LAG_S] if self._events else []
        if self._held is not None:
            held = self._held
            times.append(held.last + REPEAT_GAP_S if held.repeating else held.first + TAP_RELEASE_S)
        return min(times) if times else None

    def close(self, now: float) -> list[tuple[float, int, int]]:
        """Stop: a key the daemon was shown down is released at `now`; everything not yet handed on is
        dropped, so that nothing is pressed after the keypad was left."""
        self._events.clear()
        self._held = None
        released, self._shown_down = sorted(self._shown_down), set()
        return [(now, code, 0) for code in released]

    def _settle(self, now: float) -> None:
        """Release the held key if its repeats stopped, or if it never repeated (a tap)."""
        held = self._held
        if held is None:
            return
        if (held.repeating and now - held.last > REPEAT_GAP_S) or (
            not held.repeating and now - held.first > TAP_RELEASE_S
        ):
            self._release(self._release_time(held))

    def _release_time(self, held: _Held) -> float:
        return held.last + AUTOREPEAT_INTERVAL_S if held.repeating else held.first + TAP_S

    def _release(self, moment: float) -> None:
        held, self._held = self._held, None
        assert held is not None
        self._events.append((max(moment, held.first + 0.001), held.code, 0))
