"""Event sources: the Source protocol, a live evdev device behind it, and event timestamps on time.monotonic()."""

import errno
import fcntl
import logging
import struct
import time
from typing import Protocol

import evdev
from evdev import ecodes

log = logging.getLogger(__name__)

# errnos meaning "the device is no longer there" rather than "try again".
GONE_ERRNOS = frozenset({errno.ENODEV, errno.ENOENT, errno.ENXIO, errno.EIO, errno.EBADF, errno.ESHUTDOWN})
# _IOW('E', 0xa0, int): make the kernel stamp this client's events with CLOCK_MONOTONIC.
EVIOCSCLOCKID = 0x400445A0
# A timestamp further than this behind the clock is taken as a clock step, not as backlog.
CLOCK_STEP_S = 10.0


class DeviceGone(Exception):
    """The source is unplugged, closed, or at its end; the device manager closes and forgets it."""


class Source(Protocol):
    """Anything the device manager reads input events from; ``fileno()`` must work with select()."""

    label: str
    path: str
    monotonic: bool  # timestamps are already on time.monotonic(): no Clock.rebase needed

    def fileno(self) -> int: ...
    def read(self) -> list: ...  # list[evdev.InputEvent]; [] if nothing to read; raises DeviceGone
    def grab(self) -> None: ...
    def ungrab(self) -> None: ...
    def active_keys(self) -> list: ...  # EV_KEY codes held down right now
    def set_led(self, name: str, on: bool) -> None: ...
    def close(self) -> None: ...


def led_code(name):
    """LED code for 'NUML' or 'LED_NUML'; KeyError if unknown."""
    full = name if name.startswith("LED_") else "LED_" + name
    code = ecodes.ecodes.get(full)
    if code is None or full not in ecodes.LED.values():
        raise KeyError(name)
    return code


class EvdevSource:
    """A real evdev.InputDevice; OS errors meaning unplug become DeviceGone."""

    def __init__(self, device, label=""):
        self.device = device
        self.path = device.path
        self.label = label or getattr(device, "name", "") or device.path
        self.monotonic = False

    @classmethod
    def open(cls, path):
        """Open an event node (PermissionError if not in group input); stamp its events on the monotonic clock."""
        source = cls(evdev.InputDevice(path))
        try:
            fcntl.ioctl(source.fileno(), EVIOCSCLOCKID, struct.pack("i", time.CLOCK_MONOTONIC))
            source.monotonic = True
        except OSError as exc:
            log.debug("%s: kernel timestamps stay on the realtime clock (%s)", path, exc)
        return source

    def fileno(self):
        return self.device.fd

    def read(self):
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

    def _ioctl(self, call):
        try:
            call()
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise DeviceGone(f"{self.label}: {exc.strerror or exc}") from exc
            raise

    def grab(self):
        self._ioctl(self.device.grab)

    def ungrab(self):
        self._ioctl(self.device.ungrab)

    def active_keys(self):
        keys = []
        self._ioctl(lambda: keys.extend(self.device.active_keys()))
        return keys

    def set_led(self, name, on):
        code = led_code(name)
        self._ioctl(lambda: self.device.set_led(code, 1 if on else 0))

    def close(self):
        try:
            self.device.close()
        except OSError:
            pass  # an unplugged device may refuse even this; the fd is released either way


class Clock:
    """Maps event timestamps onto ``now()`` (time.monotonic), with one offset per device.

    The offset comes from the first event of a device. An event that would land in the future
    re-anchors it (the first read was late, or the source's clock stepped forward); so does one more
    than ``step_s`` in the past (a recording from another moment, or the realtime clock stepped back).
    """

    def __init__(self, now=time.monotonic, step_s=CLOCK_STEP_S):
        self._now, self._step_s = now, step_s
        self._offsets = {}

    def rebase(self, event, device=""):
        """A copy of the event with its timestamp on the monotonic clock."""
        now = self._now()
        stamp = event.sec + event.usec / 1e6
        offset = self._offsets.get(device)
        when = stamp + offset if offset is not None else None
        if when is None or when > now or when < now - self._step_s:
            self._offsets[device] = now - stamp
            when = now
        sec, usec = divmod(round(when * 1e6), 1_000_000)
        return evdev.InputEvent(sec, usec, event.type, event.code, event.value)

    def forget(self, device):
        """Drop the device's offset (unplugged): its next event anchors afresh."""
        self._offsets.pop(device, None)
