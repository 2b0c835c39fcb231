"""Event sources: the Source protocol, a live evdev device behind it, and event timestamps mapped by real age."""

import errno
import fcntl
import logging
import struct
import time
from collections.abc import Callable
from typing import Protocol

import evdev
from evdev import ecodes

log = logging.getLogger(__name__)

# errnos meaning "the device is no longer there" rather than "try again".
GONE_ERRNOS = frozenset({errno.ENODEV, errno.ENOENT, errno.ENXIO, errno.EIO, errno.EBADF, errno.ESHUTDOWN})
# _IOW('E', 0xa0, int): make the kernel stamp this client's events with CLOCK_MONOTONIC.
EVIOCSCLOCKID = 0x400445A0
# How far ahead of a clock a stamp may be and still be read on it (USB polling, a FIFO writer's rounding).
FUTURE_S = 0.5
# Where an event of unknown age lands: far older than any stale_s (at most 60 s), so it is never acted on late.
UNKNOWN_AGE_S = 86400.0


class DeviceGone(Exception):
    """The source is unplugged, closed, or at its end; the device manager closes and forgets it."""


class Source(Protocol):
    """Anything the device manager reads input events from; ``fileno()`` must work with select()."""

    label: str
    path: str
    monotonic: bool  # timestamps are already on time.monotonic(): no Clock.rebase needed

    def fileno(self) -> int: ...
    def read(self) -> list[evdev.InputEvent]: ...  # list[evdev.InputEvent]; [] if nothing to read; raises DeviceGone
    def grab(self) -> None: ...
    def ungrab(self) -> None: ...
    def active_keys(self) -> list[int]: ...  # EV_KEY codes held down right now
    def set_led(self, name: str, on: bool) -> None: ...
    def close(self) -> None: ...


def led_code(name: str) -> int:
    """LED code for 'NUML' or 'LED_NUML'; KeyError if unknown."""
    full = name if name.startswith("LED_") else "LED_" + name
    code = ecodes.ecodes.get(full)
    if code is None or full not in ecodes.LED.values():
        raise KeyError(name)
    return code


class EvdevSource:
    """A real evdev.InputDevice; OS errors meaning unplug become DeviceGone."""

    def __init__(self, device: evdev.InputDevice, label: str = "") -> None:
        self.device = device
        self.path: str = device.path  # type: ignore[assignment]  # opened by a str path; evdev also allows bytes
        self.label: str = label or getattr(device, "name", "") or self.path
        self.monotonic = False

    @classmethod
    def open(cls, path: str) -> "EvdevSource":
        """Open an event node (PermissionError if not in group input); stamp its events on the monotonic clock."""
        source = cls(evdev.InputDevice(path))
        try:
            fcntl.ioctl(source.fileno(), EVIOCSCLOCKID, struct.pack("i", time.CLOCK_MONOTONIC))
            source.monotonic = True
        except OSError as exc:
            log.debug("%s: kernel timestamps stay on the realtime clock (%s)", path, exc)
        return source

    def fileno(self) -> int:
        return self.device.fd

    def read(self) -> list[evdev.InputEvent]:
        try:
            events = list(self.device.read())
        except BlockingIOError:
            return []
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise DeviceGone(f"{self.label}: {exc.strerror or exc}") from exc
            raise
        if not events:
            # A live node never reads empty; a pipe or a closed file does, at its end.
            raise DeviceGone(f"{self.label}: end of file")
        return events

    def _ioctl(self, call: Callable[[], object]) -> None:
        try:
            call()
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise DeviceGone(f"{self.label}: {exc.strerror or exc}") from exc
            raise

    def grab(self) -> None:
        self._ioctl(self.device.grab)

    def ungrab(self) -> None:
        self._ioctl(self.device.ungrab)

    def active_keys(self) -> list[int]:
        keys: list[int] = []
        self._ioctl(lambda: keys.extend(self.device.active_keys()))
        return keys

    def set_led(self, name: str, on: bool) -> None:
        code = led_code(name)
        self._ioctl(lambda: self.device.set_led(code, 1 if on else 0))

    def close(self) -> None:
        try:
            self.device.close()
        except OSError:
            pass  # an unplugged device may refuse even this; the fd is released either way


class Clock:
    """Maps event timestamps onto ``now()`` (time.monotonic) by their real age, so that a stale press stays stale.

    A source stamps its events on CLOCK_REALTIME (the kernel's default, a FIFO writer using time.time()) or
    CLOCK_MONOTONIC; each stamp is read on the clock it is nearest to without being in that clock's future
    (more than FUTURE_S ahead), and lands on ``now()`` minus its age on that clock. A stamp in the future of
    both has an age nobody can know: it lands UNKNOWN_AGE_S in the past, so every rule judging age (stale_s)
    drops what it would do. Nothing is re-anchored: a press buffered for 30 s is 30 s old, first or not.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._now, self._wall = now, wall

    def age(self, stamp: float) -> float | None:
        """Seconds since `stamp` happened, or None if it cannot be known."""
        ages = [clock_now - stamp for clock_now in (self._wall(), self._now()) if stamp <= clock_now + FUTURE_S]
        return max(0.0, min(ages)) if ages else None

    def rebase(self, event: evdev.InputEvent, device: str = "") -> evdev.InputEvent:
        """A copy of the event with its timestamp on the monotonic clock (``device``: kept for callers)."""
        age = self.age(event.sec + event.usec / 1e6)
        when = self._now() - (UNKNOWN_AGE_S if age is None else age)
        sec, usec = divmod(round(when * 1e6), 1_000_000)
        return evdev.InputEvent(sec, usec, event.type, event.code, event.value)

    def forget(self, device: str) -> None:
        """Nothing to forget: each event is judged on its own (kept for the device manager's unplug path)."""
