"""Raw evdev events -> gestures (press, release, hold, repeat, double, rotary, shuttle), timed by event timestamps.

All times are the events' own timestamps (already on the caller's clock); ``tick(now)`` only fires timers.

Keys. Per key the caller's ``timing(name)`` says which gestures the keymap binds (``KeyTiming.gestures``):
- ``release`` is the raw edge: emitted when a key seen going down comes up.
- ``press`` is emitted at once on key down, unless the key binds ``press`` together with ``hold`` or
  ``double``. Then it is a *click*: emitted when the key is released before ``hold_s`` (hold bound) and no
  second press came within ``double_s`` (double bound), stamped with the moment it became certain.
  A press that turned into a hold or a double never emits ``press``: one gesture, one action.
- ``hold`` fires once if the key is still down ``hold_s`` after it went down (a release stamped exactly at
  ``hold_s`` comes too late: the key was held for hold_s). A shorter press can never produce it.
- ``double`` fires at a second press less than ``double_s`` after the first one went down. The second
  press is consumed: no press, hold or repeat of its own, only its release. A press that became a hold
  cannot start a double. A lone press can never produce it.
- ``repeat`` fires ``repeat_delay_s`` after key down, then every ``repeat_s`` while the key stays down,
  with ``steps`` = 1, 2, 3...; it cannot be combined with hold or double (``KeyTiming`` refuses).
- Kernel autorepeat (value 2) changes nothing: repeats come from ``repeat_s`` so that they are timed per
  key from event timestamps. It never starts a press (for a key held across start-up or SYN_DROPPED).
- A release or autorepeat of a key never seen going down is ignored, and so is a second down without up.
Timers fire in ``feed`` when a later event of the same device proves the time has passed, and in ``tick``
only ``latency_s`` after they are due, so that a release already on its way cancels a hold.

Rotary (rotary.py). ``REL_DIAL``, ``REL_WHEEL`` and ``REL_HWHEEL`` give ``rotary`` with signed ``steps``,
``*_HI_RES`` is ignored; on a ShuttleXpress (``RotaryConfig.shuttle``) the dial is an 8-bit counter and
the ring gives ``shuttle`` with ``position`` -7..7, its return to 0 synthesized. Key pairs
(``RotaryConfig.key_pairs``) make presses and autorepeats ``rotary`` steps +1/-1 of the pair's name.

Loss. SYN_DROPPED forgets the device's held keys, pending clicks and dial baseline, emits nothing, and
ignores events up to the next SYN_REPORT. ``reset(device)`` (unplug) forgets everything and emits nothing;
the caller stops any motion itself. ``finish(device)`` (end of a recording) first emits what is certain.
"""

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import evdev
from evdev import ecodes

from octopanel.input.keynames import all_key_names, key_code, key_name  # noqa: F401  (re-exported for the keymap)
from octopanel.panel.rotary import ROTARY_SOURCES, SHUTTLE_IDLE_S, Step, Wheels

HOLD_S = 0.8
DOUBLE_S = 0.35
REPEAT_DELAY_S = 0.5
REPEAT_S = 0.2
# How late an event may be read after its timestamp (USB polling plus the loop's own delay).
LATENCY_S = 0.05
# Repeats fired at once when time jumped ahead (a stalled loop, a gap in a recording); the rest are skipped.
MAX_REPEAT_CATCHUP = 10

KEY_KINDS = frozenset({"press", "release", "hold", "repeat", "double"})
KINDS = KEY_KINDS | {"rotary", "shuttle"}


@dataclass(frozen=True)
class Gesture:
    """One gesture; ``key`` is a canonical key name, or for rotary/shuttle the source name."""

    kind: str
    key: str
    time: float
    device: str = ""
    steps: int = 0
    position: int | None = None


@dataclass(frozen=True)
class KeyTiming:
    """Which gestures a key is bound to, and its thresholds in seconds."""

    gestures: AbstractSet[str] = frozenset()  # made a frozenset
    hold_s: float = HOLD_S
    double_s: float = DOUBLE_S
    repeat_delay_s: float = REPEAT_DELAY_S
    repeat_s: float = REPEAT_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "gestures", frozenset(self.gestures))
        unknown = self.gestures - KEY_KINDS
        if unknown:
            raise ValueError(f"unknown key gesture {sorted(unknown)[0]!r} (expected one of {sorted(KEY_KINDS)})")
        if "repeat" in self.gestures and self.gestures & {"hold", "double"}:
            other = "hold" if "hold" in self.gestures else "double"
            raise ValueError(f"a key cannot bind both repeat and {other}: holding it would do both")
        for name in ("hold_s", "double_s", "repeat_delay_s", "repeat_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, got {getattr(self, name)!r}")

    @property
    def click(self) -> bool:
        """True when press waits until it cannot become a hold or a double."""
        return "press" in self.gestures and bool(self.gestures & {"hold", "double"})


@dataclass(frozen=True)
class RotaryConfig:
    """ShuttleXpress devices (labels, or a predicate on the label), and key pairs acting as knobs.

    ``key_pairs`` is {source name: (up key, down key)}, e.g. {"KNOB": ("KEY_VOLUMEUP", "KEY_VOLUMEDOWN")}.
    """

    shuttle: Any = frozenset()  # labels, or a predicate on the label
    key_pairs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    shuttle_idle_s: float = SHUTTLE_IDLE_S

    def __post_init__(self) -> None:
        if not callable(self.shuttle):
            object.__setattr__(self, "shuttle", frozenset(self.shuttle))
        if not self.shuttle_idle_s > 0:
            raise ValueError(f"shuttle_idle_s must be above 0, got {self.shuttle_idle_s!r}")
        steps: dict[int, tuple[str, int]] = {}
        for source, pair in self.key_pairs.items():
            if source in ROTARY_SOURCES:
                raise ValueError(f"key pair {source!r}: the name is taken by a wheel axis")
            if len(pair) != 2:
                raise ValueError(f"key pair {source!r}: expected (up key, down key), got {pair!r}")
            for name, step in zip(pair, (1, -1)):
                code = key_code(name)  # KeyError names the unknown key
                if code in steps:
                    raise ValueError(f"key pair {source!r}: {name} is already used by another pair")
                steps[code] = (source, step)
        object.__setattr__(self, "_pair_steps", steps)

    def is_shuttle(self, device: str) -> bool:
        """True if the device label is in ShuttleXpress mode."""
        return self.shuttle(device) if callable(self.shuttle) else device in self.shuttle

    def pair_step(self, code: int) -> tuple[str, int] | None:
        """(source, +1 or -1) if the key code belongs to a key pair, else None."""
        return self._pair_steps.get(code)  # type: ignore[attr-defined]  # set in __post_init__ (frozen)


class _Key:
    """One key between its down edge and the last gesture it can still produce."""

    __slots__ = (
        "name",
        "down",
        "down_at",
        "consumed",
        "press_pending",
        "hold_at",
        "repeat_at",
        "repeats",
        "double_until",
        "timing",
    )

    def __init__(self, name: str, timing: KeyTiming, now: float, consumed: bool = False) -> None:
        self.name, self.timing, self.down, self.down_at, self.consumed = name, timing, True, now, consumed
        bound = timing.gestures
        self.press_pending = timing.click and not consumed
        self.hold_at = now + timing.hold_s if "hold" in bound and not consumed else None
        self.repeat_at = now + timing.repeat_delay_s if "repeat" in bound and not consumed else None
        self.repeats = 0
        self.double_until = now + timing.double_s if "double" in bound and not consumed else None

    def due(self) -> float | None:
        times = [t for t in (self.hold_at, self.repeat_at, self.double_until) if t is not None]
        return min(times) if times else None

    def idle(self) -> bool:
        return not self.down and not self.press_pending and self.double_until is None


class _Device:
    """Per-device state: held keys, SYN_DROPPED resync, and the wheels."""

    def __init__(self, wheels: Wheels) -> None:
        self.keys: dict[int, _Key] = {}
        self.dropping, self.wheels = False, wheels


class GestureEngine:
    """Feeds raw events, keeps per-device key state, and emits gestures; see the module docstring."""

    def __init__(
        self,
        timing: Callable[[str], KeyTiming],
        rotary_config: RotaryConfig | None = None,
        latency_s: float = LATENCY_S,
    ) -> None:
        self._timing = timing
        self._rotary = rotary_config if rotary_config is not None else RotaryConfig()
        self._latency_s = latency_s
        self._devices: dict[str, _Device] = {}

    def feed(self, event: evdev.InputEvent, device: str = "") -> list[Gesture]:
        """Gestures caused by one event: timers of this device due by its timestamp, then the event."""
        now = event.timestamp()
        dev = self._device(device)
        out = self._advance(device, dev, now)
        if event.type == ecodes.EV_SYN:
            self._syn(device, dev, event.code, now, out)
        elif dev.dropping:
            pass
        elif event.type == ecodes.EV_KEY:
            self._key(device, dev, event.code, event.value, now, out)
        elif event.type == ecodes.EV_REL:
            self._rel(device, dev, event.code, event.value, now, out)
        return out

    def tick(self, now: float) -> list[Gesture]:
        """Timer gestures (hold, repeat, click after the double window, shuttle idle) due by now - latency_s."""
        out = []
        for name, dev in list(self._devices.items()):
            out.extend(self._advance(name, dev, now - self._latency_s))
        out.sort(key=lambda g: g.time)
        return out

    def next_deadline(self) -> float | None:
        """When tick() next has something to do, or None."""
        times = [t for name, dev in self._devices.items() if (t := self._due(dev)) is not None]
        return min(times) + self._latency_s if times else None

    def reset(self, device: str) -> None:
        """Forget a device (unplugged): held keys, pending clicks, dial baseline. Emits nothing."""
        self._devices.pop(device, None)

    def finish(self, device: str) -> list[Gesture]:
        """The device sends nothing more (its recording ended): emit what is already certain, then forget it.

        A click waiting only for its double window is emitted, and a shuttle ring off 0 returns to 0;
        keys still down are forgotten, as by reset().
        """
        dev = self._devices.pop(device, None)
        out = []
        for key in dev.keys.values() if dev is not None else ():
            if key.press_pending and not key.down and key.double_until is not None:
                out.append(Gesture("press", key.name, key.double_until, device))
        if dev is not None and dev.wheels.due() is not None:
            out += _wrap(device, dev.wheels.expire())
        return sorted(out, key=lambda g: g.time)

    def _device(self, device: str) -> _Device:
        dev = self._devices.get(device)
        if dev is None:
            wheels = Wheels(self._rotary.is_shuttle(device), self._rotary.shuttle_idle_s)
            dev = self._devices[device] = _Device(wheels)
        return dev

    def _due(self, dev: _Device) -> float | None:
        times = [t for key in dev.keys.values() if (t := key.due()) is not None]
        if (wheels_due := dev.wheels.due()) is not None:
            times.append(wheels_due)
        return min(times) if times else None

    def _advance(self, device: str, dev: _Device, limit: float) -> list[Gesture]:
        """Fire this device's timers due at or before limit, in time order."""
        out = []
        while (due := self._due(dev)) is not None and due <= limit:
            if due == dev.wheels.due():
                out += _wrap(device, dev.wheels.expire())
                continue
            code, key = min(((c, k) for c, k in dev.keys.items() if k.due() is not None), key=lambda ck: ck[1].due())  # type: ignore[arg-type,return-value]  # only keys with a due time
            self._fire(device, key, due, out, limit)
            if key.idle():
                del dev.keys[code]
        return out

    def _fire(self, device: str, key: _Key, due: float, out: list[Gesture], limit: float) -> None:
        if key.hold_at == due:
            key.hold_at = key.double_until = None
            key.consumed, key.press_pending = True, False
            out.append(Gesture("hold", key.name, due, device))
        elif key.repeat_at == due:
            missed = int((limit - due) // key.timing.repeat_s)
            if missed > MAX_REPEAT_CATCHUP:  # never flood: skip what is long overdue
                key.repeats += missed - MAX_REPEAT_CATCHUP
            key.repeats += 1
            # From key down, not from the last repeat, so that float error does not pile up.
            key.repeat_at = key.down_at + key.timing.repeat_delay_s + key.repeats * key.timing.repeat_s
            out.append(Gesture("repeat", key.name, due, device, key.repeats))
        elif key.double_until == due:
            key.double_until = None
            if key.press_pending and (not key.down or key.hold_at is None):
                key.press_pending = False
                out.append(Gesture("press", key.name, due, device))

    def _syn(self, device: str, dev: _Device, code: int, now: float, out: list[Gesture]) -> None:
        if code == ecodes.SYN_DROPPED:
            dev.keys.clear()
            dev.dropping = True
            dev.wheels.dropped()
        elif code == ecodes.SYN_REPORT and dev.dropping:
            dev.dropping = False
        elif code == ecodes.SYN_REPORT:
            out += _wrap(device, dev.wheels.report(now))

    def _key(self, device: str, dev: _Device, code: int, value: int, now: float, out: list[Gesture]) -> None:
        pair = self._rotary.pair_step(code)
        if pair is not None:
            if value in (1, 2):
                out.append(Gesture("rotary", pair[0], now, device, pair[1]))
            return
        key = dev.keys.get(code)
        if value == 1:
            if key is not None and key.down:
                return
            if key is not None and key.double_until is not None and now < key.double_until:
                dev.keys[code] = _Key(key.name, key.timing, now, consumed=True)
                out.append(Gesture("double", key.name, now, device))
                return
            name = key_name(code)
            timing = self._timing(name)
            dev.keys[code] = key = _Key(name, timing, now)
            if not timing.click:
                out.append(Gesture("press", name, now, device))
        elif value == 0 and key is not None and key.down:
            key.down = False
            key.hold_at = key.repeat_at = None
            if key.press_pending and key.double_until is None:
                key.press_pending = False
                out.append(Gesture("press", key.name, now, device))
            out.append(Gesture("release", key.name, now, device))
            if key.idle():
                del dev.keys[code]

    def _rel(self, device: str, dev: _Device, code: int, value: int, now: float, out: list[Gesture]) -> None:
        out += _wrap(device, dev.wheels.rel(code, value, now))


def _wrap(device: str, steps: list[Step]) -> list[Gesture]:
    return [Gesture(kind, source, when, device, count, position) for kind, source, when, count, position in steps]
