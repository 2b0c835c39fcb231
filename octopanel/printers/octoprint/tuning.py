"""What relative steps count from on OctoPrint: its reported targets, and the factors it does not report.

OctoPrint's /api/printer shows a new target only once it has sent the M104/M140 to the printer (its
`_gcode_M104_sent` hook): about 10 ms when idle, about 0.3 s while printing, longer behind a blocking M109.
A second `settemp +5` in that window would count from the old target, so a target this client set is
counted from until the printer shows it. OctoPrint neither tracks nor reports the feed rate and flow
factors (M220/M221 without S answer on the serial terminal only), so they are known only as this client
last set them, and forgotten whenever the printer is seen disconnected (a reconnect resets the firmware).
"""

from collections.abc import Callable, Iterable
from typing import Any

from octopanel.gcode import parse as gcode_parse

PENDING_S = 10.0  # how long a target this client set may take to show before the printer's word wins again
# ...when what the printer had before is unknown (a set with no read before it), so that anything else it
# shows may be someone else's: long enough for a print's command queue, short against a change elsewhere
BLIND_PENDING_S = 2.0
SEEN_S = 2.0  # a target read this recently is what the printer had before a set that follows it
FACTOR_CODES = {"M220": "feedrate", "M221": "flowrate"}
TARGET_CODES = {"M104": "tool", "M109": "tool", "M140": "bed", "M190": "bed"}


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and round(float(a), 3) == round(float(b), 3)


class Tuning:
    """One client's memory of what it set, merged into what the printer reports (see the module docstring)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.factors: dict[str, int | None] = {"feedrate": None, "flowrate": None}
        self._seen: dict[str, tuple[float | None, float]] = {}  # "tool" | "bed" -> (reported target, when)
        # "tool" | "bed" -> (targets the printer may still show meanwhile, or None if unknown; the target set;
        # when): the printer showing anything else means someone else set it, and its word wins.
        self._pending: dict[str, tuple[frozenset[float | None] | None, float, float]] = {}

    def forget(self) -> None:
        """The printer is disconnected: whatever it had, a reconnected firmware starts afresh."""
        self.factors = {"feedrate": None, "flowrate": None}
        self._pending.clear()

    def set_factor(self, name: str, value: float) -> None:
        self.factors[name] = int(round(value))

    def set_target(self, key: str, value: float) -> None:
        now = self._now()
        pending = self._pending.get(key)
        window = PENDING_S if pending is not None and pending[0] is not None else BLIND_PENDING_S
        if pending is not None and now - pending[2] < window:
            before = None if pending[0] is None else pending[0] | {pending[1]}
        else:
            seen = self._seen.get(key)
            before = frozenset({seen[0]}) if seen is not None and now - seen[1] <= SEEN_S else None
        self._pending[key] = (before, float(value), now)

    def sent_gcode(self, lines: Iterable[str]) -> None:
        """Raw G-code this client sent: targets and factors it sets count as set by this client too."""
        for text in lines:
            try:
                command = gcode_parse.parse(text)
            except ValueError:
                continue  # judged before sending; a line the parser cannot read sets nothing we could know
            if command is None:
                continue
            value = command.words.get("S")
            if value is None:
                continue
            if command.base in FACTOR_CODES:
                self.set_factor(FACTOR_CODES[command.base], value)
            elif command.base in TARGET_CODES and command.words.get("T") in (None, 0):
                self.set_target(TARGET_CODES[command.base], value)

    def read(self, temperature: dict[str, Any]) -> dict[str, Any]:
        """printers.backend's tuning() from /api/printer's `temperature` part."""
        now = self._now()
        result: dict[str, Any] = {}
        remembered: list[str] = []
        for key, name in (("tool", "tool0"), ("bed", "bed")):
            reported = (temperature.get(name) or {}).get("target")
            self._seen[key] = (reported, now)
            pending = self._pending.get(key)
            window = PENDING_S if pending is not None and pending[0] is not None else BLIND_PENDING_S
            if pending is not None and (_same(reported, pending[1]) or now - pending[2] >= window):
                del self._pending[key]  # shown (or given up on): the printer's word again
                pending = None
            if pending is not None and (pending[0] is None or any(_same(reported, b) for b in pending[0])):
                result[key] = pending[1]
                remembered.append(key)
            else:
                self._pending.pop(key, None)
                result[key] = None if reported is None else float(reported)
        for name, value in self.factors.items():
            result[name] = value
            if value is not None:
                remembered.append(name)
        result["remembered"] = remembered
        return result
