"""Wheels, dials and the ShuttleXpress: one device's REL events -> rotary steps and shuttle ring positions."""

from evdev import ecodes

# (kind, source, time, steps, position): what every Wheels method returns a list of
Step = tuple[str, str, float, int, int | None]

SHUTTLE_IDLE_S = 0.3
ROTARY_SOURCES = ("REL_DIAL", "REL_WHEEL", "REL_HWHEEL")
# The *_HI_RES twins (±120 per detent on newer kernels) are not here: one of each pair is enough.
_CODES = {ecodes.ecodes[name]: name for name in ROTARY_SOURCES}


class Wheels:
    """The wheels of one device; every method returns (kind, source, time, steps, position) tuples.

    Plain devices: each REL_DIAL, REL_WHEEL and REL_HWHEEL event is a ``rotary`` step of its value.
    A ShuttleXpress (``shuttle=True``): REL_DIAL is an 8-bit counter, stepped by its difference modulo 256
    (-128..127), the first report only setting the baseline; REL_WHEEL is the ring position -7..7, emitted
    as ``shuttle`` on change. The kernel drops zero REL values, so the ring's return to 0 is never
    reported: a report carrying the counter but not the ring is that return, and so is ``idle_s`` of
    silence from the ring (the counter may be 0 too, and then the report is empty).
    """

    def __init__(self, shuttle: bool = False, idle_s: float = SHUTTLE_IDLE_S) -> None:
        self.shuttle, self._idle_s = shuttle, idle_s
        self.position = 0
        self._counter: int | None = None
        self._ring_at = 0.0
        self._frame_dial = self._frame_ring = False

    def rel(self, code: int, value: int, now: float) -> list[Step]:
        """One EV_REL event."""
        source = _CODES.get(code)
        if source is None:
            return []
        if self.shuttle and source == "REL_DIAL":
            self._frame_dial = True
            previous, self._counter = self._counter, value & 0xFF
            steps = (self._counter - previous + 128) % 256 - 128 if previous is not None else 0
            return [("rotary", source, now, steps, None)] if steps else []
        if self.shuttle and source == "REL_WHEEL":
            self._frame_ring, self._ring_at = True, now
            return self._ring(value, now)
        return [("rotary", source, now, value, None)] if value else []

    def report(self, now: float) -> list[Step]:
        """The end of a report (SYN_REPORT)."""
        back = self._frame_dial and not self._frame_ring
        self._frame_dial = self._frame_ring = False
        return self._ring(0, now) if back else []

    def dropped(self) -> None:
        """SYN_DROPPED: counts went with the lost reports; the next counter only sets a new baseline."""
        self._counter = None
        self._frame_dial = self._frame_ring = False

    def due(self) -> float | None:
        """When the ring counts as back at 0 for silence, or None."""
        return self._ring_at + self._idle_s if self.shuttle and self.position else None

    def expire(self) -> list[Step]:
        """The silence timer ran out: the ring is back at 0."""
        due = self.due()
        return self._ring(0, due) if due is not None else []

    def _ring(self, position: int, now: float) -> list[Step]:
        if position == self.position:
            return []
        steps, self.position = position - self.position, position
        return [("shuttle", "REL_WHEEL", now, steps, position)]
