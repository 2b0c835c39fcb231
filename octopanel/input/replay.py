"""Recordings of raw struct input_event records: record them, and replay them as a Source with their timing."""

import errno
import logging
import math
import os
import select
import stat
import struct
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

import evdev
from evdev import ecodes

from octopanel.input.evdev_source import DeviceGone, Source

log = logging.getLogger(__name__)

NATIVE_FORMAT = "llHHi"  # struct input_event: timeval (sec, usec), type, code, value
NATIVE_SIZE = struct.calcsize(NATIVE_FORMAT)
# The two layouts found in the wild: 64-bit kernels, and 32-bit ones such as Pi OS armhf.
FORMATS = {24: "=qqHHi", 16: "=iiHHi"}
SNIFF_BYTES = 480  # up to twenty records decide the layout ...
SNIFF_MIN_BYTES = 48  # ... but two already do, so that a FIFO fed frame by frame is not held back
POLL_S = 0.1  # how often a blocked reader looks at its stop flag
MAX_GAP_S = 60.0  # a longer pause in a recording (or a wild timestamp) is replayed as this long


class EndOfReplay(DeviceGone):
    """The recording ended. A DeviceGone, so loss handling covers it; the manager never reopens it."""


def record_size(head: bytes) -> int:
    """The record size (24 or 16) a recording's first bytes look like; the native size when unsure."""
    plausible = [size for size, fmt in FORMATS.items() if _plausible(head, size, fmt)]
    return plausible[0] if len(plausible) == 1 else NATIVE_SIZE


def _plausible(head: bytes, size: int, fmt: str) -> bool:
    count = len(head) // size
    if count == 0 or len(head) % size and len(head) < SNIFF_BYTES:
        return False
    syncs = 0
    for i in range(count):
        sec, usec, type_, _code, _value = struct.unpack_from(fmt, head, i * size)
        if sec < 0 or not 0 <= usec < 1_000_000 or type_ > ecodes.EV_MAX:
            return False
        syncs += type_ == ecodes.EV_SYN
    return syncs > 0


class ReplaySource:
    """A recording (file or FIFO) replayed through evdev's own decoding on a pipe, with its original timing.

    A feeder thread writes the records into the pipe at their moments, scaled by ``speed``; timestamps are
    rebased so that the first event is ``clock()`` at its arrival and the rest follow it on the same clock.
    With speed 0 or inf everything is delivered at once but keeps the recording's spacing (at 1x), so holds
    and doubles are judged as recorded; those timestamps run ahead of the clock. A FIFO's replay starts
    when a writer connects and ends when it closes (``live``: see __init__). At the end ``read()`` raises EndOfReplay.
    """

    monotonic = True

    def __init__(
        self,
        path: "str | os.PathLike[str]",
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        label: str | None = None,
        size: int | None = None,
        live: bool = False,
    ) -> None:
        """``live``: `path` is a FIFO that another program writes native records into as they happen (a
        software keypad). The loop reads and decodes it directly, as it does a real event node: no feeder
        thread, no pacing, and its timestamps, on whatever clock, are mapped by the DeviceManager's Clock.
        When the writer closes, read() raises DeviceGone, not EndOfReplay: an unplug, after which the manager
        reopens the FIFO and waits for the next writer, as for a replugged keypad.
        The writer must write whole records, at most PIPE_BUF (4 KiB) at a time, as the kernel does: a longer
        write may be split mid-record, and evdev's decoding would then lose step."""
        if not speed >= 0:
            raise ValueError(f"speed must be 0 (as fast as possible) or above, got {speed!r}")
        self.path = os.fspath(path)
        self.label = label or os.path.basename(self.path)
        self._speed = speed if 0 < speed < math.inf else None
        self._clock, self._size = clock, size
        self._stop = threading.Event()
        self._held: set[int] = set()
        # InputDevice.__init__ would ioctl the fd; only fd and path are needed to read and decode.
        self.device = evdev.InputDevice.__new__(evdev.InputDevice)
        self._thread: threading.Thread | None
        self.device.path, self._thread, self._live = self.path, None, live
        if live:
            if not stat.S_ISFIFO(_mode(self.path)):
                raise ValueError(f"{self.path}: live replay needs a FIFO")
            # Non-blocking: no writer yet is not an end (poll reports nothing until one connects).
            self.device.fd, self.monotonic = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK), False
            return
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        self.device.fd = read_end
        self._thread = threading.Thread(target=self._feed, args=(write_end,), name=f"replay {self.label}", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self.device.fd

    def read(self) -> list[evdev.InputEvent]:
        if self.device.fd < 0:
            raise EndOfReplay(f"{self.label}: closed")
        try:
            events = list(self.device.read())
        except BlockingIOError:
            return []
        if not events:
            if self._live:  # a software keypad's writer stopped: an unplug; the manager reopens the FIFO
                raise DeviceGone(f"{self.label}: the FIFO's writer closed it; waiting for the next writer")
            raise EndOfReplay(f"{self.label}: end of recording")
        for event in events:
            if event.type == ecodes.EV_KEY:
                (self._held.add if event.value else self._held.discard)(event.code)
        return events

    def active_keys(self) -> list[int]:
        return sorted(self._held)

    def grab(self) -> None:
        pass  # nothing else reads a recording

    def ungrab(self) -> None:
        pass

    def set_led(self, name: str, on: bool) -> None:
        pass  # a recording has no LEDs to light

    def close(self) -> None:
        """Stop the feeder and release both pipe ends."""
        self._stop.set()
        if self._thread is None:
            self.device.close()
            return
        if self._thread.is_alive() and stat.S_ISFIFO(_mode(self.path)):
            _release_fifo_open(self.path)
        self.device.close()  # a feeder blocked writing now gets EPIPE
        self._thread.join(timeout=2.0)

    def _feed(self, write_end: int) -> None:
        try:
            source = os.open(self.path, os.O_RDONLY)  # blocks on a FIFO until a writer connects
        except OSError as exc:
            log.error("cannot replay %s: %s", self.path, exc.strerror or exc)
            os.close(write_end)
            return
        try:
            if not self._stop.is_set():
                self._pump(source, write_end)
        except BrokenPipeError:
            pass  # the reader closed the source
        except OSError as exc:
            log.error("replay of %s stopped: %s", self.path, exc.strerror or exc)
        except (struct.error, OverflowError, ValueError) as exc:
            log.error("replay of %s stopped: not a recording of input events (%s)", self.path, exc)
        finally:
            os.close(source)
            os.close(write_end)

    def _pump(self, source: int, write_end: int) -> None:
        start: float | None
        first: float | None
        frame: list[tuple[int, int, int]]
        frame_due: float | None
        buffer, size, start, first, last, frame, frame_due = b"", self._size, None, None, 0.0, [], None
        while not self._stop.is_set():
            chunk = _read_some(source)
            buffer += chunk or b""
            if size is None and (len(buffer) >= SNIFF_MIN_BYTES or chunk == b""):
                size = record_size(buffer[:SNIFF_BYTES])
            if size is not None:
                usable = len(buffer) - len(buffer) % size
                for offset in range(0, usable, size):
                    sec, usec, type_, code, value = struct.unpack_from(FORMATS[size], buffer, offset)
                    stamp = sec + usec / 1e6
                    if start is None:
                        start, first = self._clock(), stamp
                    # A recording never makes time run backwards, nor jumps ahead by more than MAX_GAP_S.
                    last = max(last, min(stamp - first, last + MAX_GAP_S))
                    due = start + (last / self._speed if self._speed else last)
                    if frame and due != frame_due:
                        self._write(write_end, frame, frame_due)
                        frame = []
                    frame_due = due
                    frame.append((type_, code, value))
                buffer = buffer[usable:]
            if frame:  # now, not when more input comes: a live FIFO may pause after any frame
                self._write(write_end, frame, frame_due)
                frame = []
            if chunk == b"":
                break
        if buffer:
            log.warning("%s: ignoring %d trailing bytes (not a whole record)", self.path, len(buffer))

    def _write(self, write_end: int, frame: list[tuple[int, int, int]], due: float | None) -> None:
        assert due is not None  # set with the frame's first event
        if self._speed is not None:
            delay = due - self._clock()
            if delay > 0 and self._stop.wait(delay):
                return
        sec, usec = divmod(round(due * 1e6), 1_000_000)
        os.write(write_end, b"".join(struct.pack(NATIVE_FORMAT, sec, usec, *event) for event in frame))


def _read_some(fd: int) -> bytes | None:
    """Up to 64 KiB from fd: b'' at its end, None if nothing came within POLL_S."""
    ready, _, _ = select.select([fd], [], [], POLL_S)
    return os.read(fd, 65536) if ready else None


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def _release_fifo_open(path: str) -> None:
    """Wake a reader blocked opening a FIFO by briefly connecting as a writer (it then sees its end)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # no reader waiting: nothing to wake
            raise


def record(
    source: "str | os.PathLike[str] | Source",
    out: "str | os.PathLike[str] | BinaryIO",
    stop: "threading.Event | Callable[[], bool] | None" = None,
) -> int:
    """Write raw native records, the bytes ``cat /dev/input/eventN`` gives, until stop, end of input or unplug.

    ``source`` is a path (its bytes are copied as they are) or a Source (its events are packed);
    ``out`` a path or a binary file; ``stop`` a threading.Event or a callable. Returns bytes written.
    """
    should_stop: Callable[[], bool] = getattr(stop, "is_set", stop) or (lambda: False)  # type: ignore[arg-type]  # an Event's is_set, or the callable itself
    if isinstance(out, (str, os.PathLike)):
        with open(out, "wb") as handle:
            return record(source, handle, stop)
    if isinstance(source, (str, os.PathLike)):
        return _copy_node(os.fspath(source), out, should_stop)
    written = 0
    while not should_stop():
        ready, _, _ = select.select([source], [], [], POLL_S)
        if not ready:
            continue
        try:
            events = source.read()
        except DeviceGone:
            break
        data = b"".join(struct.pack(NATIVE_FORMAT, e.sec, e.usec, e.type, e.code, e.value) for e in events)
        out.write(data)
        out.flush()
        written += len(data)
    return written


def _copy_node(path: str, out: BinaryIO, should_stop: Callable[[], bool]) -> int:
    fd = os.open(path, os.O_RDONLY)
    written = 0
    try:
        while not should_stop():
            ready, _, _ = select.select([fd], [], [], POLL_S)
            if not ready:
                continue
            try:
                # evdev hands out whole records only, so a multiple of the record size keeps them whole.
                data = os.read(fd, 64 * NATIVE_SIZE)
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.EIO):
                    break  # unplugged: the recording ends here
                raise
            if not data:
                break
            out.write(data)
            out.flush()
            written += len(data)
    finally:
        os.close(fd)
    return written
