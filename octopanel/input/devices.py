"""Which devices to read (specs), and the one place they are opened, grabbed, lost and found again."""

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence

import evdev

from octopanel.input.devicespec import DeviceSpec
from octopanel.input.discovery import DeviceInfo, group_hint, list_descriptors, list_devices, print_devices  # noqa: F401
from octopanel.input.evdev_source import Clock, DeviceGone, EvdevSource, Source  # noqa: F401
from octopanel.input.hotplug import RESCAN_INTERVAL_S, Hotplug
from octopanel.input.replay import EndOfReplay, ReplaySource, record  # noqa: F401

log = logging.getLogger(__name__)


def find_devices(text: str, lister: Callable[[], list[DeviceInfo]] = list_descriptors) -> list[DeviceInfo]:
    """The nodes a shorthand spec (path, vvvv:pppp or name glob) designates, e.g. for ``octopanel record``."""
    spec = DeviceSpec.parse(text)
    return [info for info in lister() if spec.matches(info)]


class _Group:
    """The open event nodes of one physical device, under one label."""

    def __init__(self, key: str, index: int, spec: DeviceSpec, label: str) -> None:
        self.key, self.index, self.spec, self.label = key, index, spec, label
        self.sources: dict[str, Source] = {}  # path -> Source
        self.grab_waiting: set[str] = set()  # paths whose grab waits for all keys up
        self.announced = False  # on_change(present=True) was called


class DeviceManager:
    """Opens the devices matching the specs, reads them, and handles their loss and return.

    ``specs`` are DeviceSpecs or config entries (see DeviceSpec.from_config). ``lister()`` returns
    DeviceInfo for the nodes present, ``opener(path)`` a Source. ``on_change(label, present, error)`` is
    called when a device appears (error None) or is lost (error the DeviceGone; an EndOfReplay for a
    finished recording, which is never reopened); on loss the caller resets its gesture state for that
    label. A rescan follows soon after any loss. Events come back on the time.monotonic() clock.
    """

    def __init__(
        self,
        specs: Iterable[object],
        lister: Callable[[], list[DeviceInfo]] = list_descriptors,
        opener: Callable[[str], Source] = EvdevSource.open,
        on_change: Callable[[str, bool, DeviceGone | None], None] | None = None,
        watch_dir: str | None = "/dev/input",
        rescan_interval_s: float = RESCAN_INTERVAL_S,
        clock: Clock | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        # Keymap entries may come as the config's own mappings or shorthand strings.
        self._specs = [
            s if isinstance(s, DeviceSpec) else DeviceSpec.from_config(s, path=f"devices[{i}]")
            for i, s in enumerate(specs)
        ]
        self._lister, self._opener, self._on_change = lister, opener, on_change
        self._hotplug = Hotplug(watch_dir, rescan_interval_s, now=now)
        self._clock = clock if clock is not None else Clock(now)
        self._groups: dict[str, _Group] = {}  # physical key -> _Group
        self._by_fd: dict[int, tuple[_Group, str]] = {}  # fd -> (_Group, path)
        self._fd_changes = 0  # opens and closes, for `generation`
        self._waiting: set[int] = set()  # indexes of specs already logged as missing
        self._ended: set[str] = set()  # paths of finished recordings
        self._denied: set[str] = set()  # paths already logged as not readable

    def rescan(self) -> None:
        """Open every matching device not open yet, and late nodes of open ones; log specs still missing."""
        try:
            infos = self._lister()
        except OSError as exc:
            log.warning("cannot list input devices: %s", exc.strerror or exc)
            return
        groups: dict[str, list[DeviceInfo]] = {}
        # A node is read by one group only. A new node is root-only until udev chowns it: listed then, it has
        # no phys and is keyed by its by-id name, yet a path spec opens it (the chown may land before the
        # open); listed readable at the next scan, it is keyed by phys, and every press would count twice.
        open_paths = {path for _, path in self._by_fd.values()}
        for info in infos:
            if info.path not in self._ended and info.path not in open_paths:
                groups.setdefault(info.physical, []).append(info)
        for key, nodes in groups.items():
            group = self._groups.get(key)
            for node in nodes if group is not None else ():
                if group is not None and node.path not in group.sources:  # (mypy cannot narrow through the loop)
                    self._open_node(group, node.path)
        for index, spec in enumerate(self._specs):
            for key, nodes in groups.items():
                if key not in self._groups and any(spec.matches(node) for node in nodes):
                    self._open_group(index, spec, key, nodes)
        for index, spec in enumerate(self._specs):
            if index not in self._waiting and not any(g.index == index for g in self._groups.values()):
                self._waiting.add(index)
                log.info("waiting for %s", spec)

    def missing(self) -> list[DeviceSpec]:
        """The specs no open device satisfies."""
        present = {group.index for group in self._groups.values()}
        return [spec for index, spec in enumerate(self._specs) if index not in present]

    def labels(self) -> list[str]:
        """Labels of the open devices."""
        return [group.label for group in self._groups.values()]

    def spec(self, label: str) -> DeviceSpec | None:
        """The spec an open device was matched by (e.g. to tell a ShuttleXpress), or None."""
        return next((g.spec for g in self._groups.values() if g.label == label), None)

    def fds(self) -> list[int]:
        """Every fd to select on for reading: the devices, and the hotplug watch if any."""
        watch = self._hotplug.fileno()
        return ([watch] if watch is not None else []) + list(self._by_fd)

    @property
    def generation(self) -> int:
        """Changes whenever fds() may have changed: an fd opened or closed, or the hotplug watch replaced.
        The loop registers fds() afresh only then (a reused fd number is another file to epoll)."""
        return self._fd_changes + self._hotplug.generation

    def handle_readable(self, fd: int) -> list[tuple[str, list[evdev.InputEvent]]]:
        """Read a ready fd: [(label, events)] with timestamps on time.monotonic(); [] for the watch or a loss."""
        if fd == self._hotplug.fileno():
            self._hotplug.handle_readable()
            return []
        entry = self._by_fd.get(fd)
        if entry is None:
            return []  # closed earlier in this round, with the rest of its group
        group, path = entry
        source = group.sources[path]
        try:
            events = source.read()
            if path in group.grab_waiting:
                self._try_grab(group, path, source)
        except DeviceGone as exc:
            self._lose(group, exc)
            return []
        except OSError as exc:  # an errno nobody expected still must not take the daemon down
            self._lose(group, DeviceGone(f"{group.label}: {exc.strerror or exc}"))
            return []
        if not source.monotonic:
            events = [self._clock.rebase(event, group.label) for event in events]
        return [(group.label, events)] if events else []

    def next_deadline(self) -> float | None:
        """When tick() should run next (a timed or settled rescan), or None."""
        return self._hotplug.next_deadline()

    def tick(self, now: float) -> None:
        """Rescan if the hotplug watch or the timer says so."""
        if self._hotplug.due(now):
            self.rescan()

    def set_led(self, label: str, name: str, on: bool) -> None:
        """Light or clear an LED ('NUML', 'CAPSL', 'SCROLLL') on every node of the device with that label."""
        for group in list(self._groups.values()):
            if group.label == label:
                try:
                    for source in group.sources.values():
                        source.set_led(name, on)
                except DeviceGone as exc:
                    self._lose(group, exc)

    def close(self) -> None:
        for group in list(self._groups.values()):
            self._close_group(group)
        self._hotplug.close()

    def _open_group(self, index: int, spec: DeviceSpec, key: str, nodes: Sequence[DeviceInfo]) -> None:
        names = sorted((n.name for n in nodes if n.name), key=len)
        base = spec.label or (names[0] if names else os.path.basename(nodes[0].path))
        taken = {group.label for group in self._groups.values()}
        label, number = base, 1
        while label in taken:  # two devices matching one spec must not share gesture state
            number += 1
            label = f"{base}#{number}"
        group = _Group(key, index, spec, label)
        self._groups[key] = group
        for node in nodes:
            self._open_node(group, node.path)
        if self._groups.get(key) is not group:
            return  # lost while opening
        if not group.sources:
            del self._groups[key]
            return
        self._waiting.discard(index)
        log.info("using %s: %s", label, ", ".join(group.sources))
        group.announced = True
        if self._on_change is not None:
            self._on_change(label, True, None)

    def _open_node(self, group: _Group, path: str) -> None:
        if self._groups.get(group.key) is not group:
            return  # the device was lost while its other nodes were being opened
        try:
            source = self._opener(path)
        except PermissionError:
            if path not in self._denied:
                self._denied.add(path)
                log.error("cannot open %s for %s: permission denied; %s", path, group.label, group_hint())
            return
        except OSError as exc:
            log.warning("cannot open %s for %s: %s", path, group.label, exc.strerror or exc)
            return
        source.label = group.label
        group.sources[path] = source
        self._by_fd[source.fileno()] = (group, path)
        self._fd_changes += 1
        if group.spec.grab:
            try:
                self._try_grab(group, path, source)
            except DeviceGone as exc:
                self._lose(group, exc)

    def _try_grab(self, group: _Group, path: str, source: Source) -> None:
        """Grab only with no key down, or the held key would stay stuck down for everyone else."""
        if source.active_keys():
            group.grab_waiting.add(path)
            return
        group.grab_waiting.discard(path)
        try:
            source.grab()
        except OSError as exc:
            log.warning("cannot grab %s (%s): its keys also reach other programs", path, exc.strerror or exc)

    def _lose(self, group: _Group, error: DeviceGone) -> None:
        if self._groups.get(group.key) is not group:
            return
        if isinstance(error, EndOfReplay):
            self._ended.update(group.sources)
        self._close_group(group)
        self._clock.forget(group.label)
        self._hotplug.request()
        if isinstance(error, EndOfReplay):
            log.info("%s", error)  # a recording's normal end, not a loss
        else:
            log.warning("lost %s: %s", group.label, error)
        if self._on_change is not None and group.announced:
            self._on_change(group.label, False, error)

    def _close_group(self, group: _Group) -> None:
        del self._groups[group.key]
        for fd in [fd for fd, (owner, _) in self._by_fd.items() if owner is group]:
            del self._by_fd[fd]
        self._fd_changes += 1
        for source in group.sources.values():
            source.close()
