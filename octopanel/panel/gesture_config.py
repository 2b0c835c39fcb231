"""The gestures and their settings: the Gesture record, per-key timing, rotary sources, default thresholds."""

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from octopanel.input.keynames import key_code
from octopanel.panel.rotary import ROTARY_SOURCES, SHUTTLE_IDLE_S

HOLD_S = 0.8
DOUBLE_S = 0.35
REPEAT_DELAY_S = 0.5
REPEAT_S = 0.2

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
