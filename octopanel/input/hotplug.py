"""When to rescan for input devices: inotify on /dev/input through libc (no dependency), else a timer.

Without /dev/input (no input device since boot, or a container), /dev itself is watched for its creation,
so that an idle daemon still never wakes up on a timer; the timer is only for a system without inotify."""

import ctypes
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

IN_ATTRIB, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x4, 0x80, 0x100, 0x200
# A new node is created root-only and made readable by udev just after (IN_ATTRIB): wait for that.
SETTLE_S = 0.3
RESCAN_INTERVAL_S = 2.0


def _inotify(directory: str, mask: int = IN_ATTRIB | IN_MOVED_TO | IN_CREATE | IN_DELETE) -> int | None:
    """An inotify fd watching directory, or None (no such directory, or no inotify in this libc)."""
    if not os.path.isdir(directory):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc is already loaded
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        log.warning(
            "inotify unavailable (%s); rescanning every %gs", os.strerror(ctypes.get_errno()), RESCAN_INTERVAL_S
        )
        return None
    if libc.inotify_add_watch(fd, os.fsencode(directory), mask) < 0:
        log.warning("cannot watch %s (%s); rescanning on a timer", directory, os.strerror(ctypes.get_errno()))
        os.close(fd)
        return None
    return fd


class Hotplug:
    """Says when a rescan is due: soon after a change in ``directory``, or every ``interval_s`` without inotify."""

    def __init__(
        self,
        directory: str | None = "/dev/input",
        interval_s: float = RESCAN_INTERVAL_S,
        settle_s: float = SETTLE_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory, self._interval_s, self._settle_s, self._now = directory, interval_s, settle_s, now
        self._fd: int | None = None
        self._parent = False  # _parent: the fd watches the parent, for directory to appear
        self.generation = 0  # counts changes of fileno(): see DeviceManager.generation
        if directory is not None:
            self._watch()
        self._due: float | None = None if self._fd is not None else now() + interval_s

    def _watch(self) -> bool:
        """Watch the directory, else its parent for the directory's creation; False if neither works."""
        assert self._directory is not None  # only called with a directory to watch
        old = self._fd
        self._fd = _inotify(self._directory)
        self._parent = False
        if self._fd is None:
            parent = os.path.dirname(os.path.abspath(self._directory))
            self._fd = _inotify(parent, IN_CREATE | IN_MOVED_TO) if os.path.isdir(parent) else None
            self._parent = self._fd is not None
        if self._fd is not None or old is not None:  # not on every tick of the timer that found nothing
            self.generation += 1
        return self._fd is not None

    def fileno(self) -> int | None:
        """The inotify fd to select on, or None when running on the timer."""
        return self._fd

    def handle_readable(self) -> None:
        """Drain the inotify events; schedule a rescan once the burst has settled."""
        assert self._fd is not None  # only a watch's fd is selected on
        try:
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass
        if self._parent:
            assert self._directory is not None  # a parent is watched for a directory
            if not os.path.isdir(self._directory):
                return  # something else appeared in the parent
            old = self._fd
            self._watch()  # now the directory itself; its first nodes may be there already: rescan
            assert old is not None
            os.close(old)  # after opening the new watch; the generation tells the loop to register it
        self._due = self._now() + self._settle_s

    def request(self) -> None:
        """Ask for a rescan soon, e.g. after a loss: a quick replug may have come and gone unnoticed."""
        soon = self._now() + self._settle_s
        self._due = soon if self._due is None else min(self._due, soon)

    def next_deadline(self) -> float | None:
        return self._due

    def due(self, now: float) -> bool:
        """True (once) when a rescan is due; re-arms the timer, or upgrades to inotify if the directory appeared."""
        if self._due is None or now < self._due:
            return False
        self._due = None
        if self._fd is None and self._directory is not None:
            self._watch()
        if self._fd is None:
            self._due = now + self._interval_s
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
