"""`octopanel run`: the panel daemon's loop; signals, systemd notify and watchdog, reload, status.

Concurrency model, in one place: this module's single-threaded `selectors` loop reads devices, the
control socket and a wake-up pipe (signals, worker results); executor.py's one worker thread does all
HTTP. The loop never waits on OctoPrint, nor on a keymap being parsed: a reload parses on a short-lived
thread of its own and hands the result back through the wake-up pipe.
"""

import logging
import os
import selectors
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from octopanel.daemon.executor import Executor
from octopanel.daemon.health import WorkerHealth
from octopanel.daemon.jobs import Job
from octopanel.daemon.reload import KeymapReload
from octopanel.daemon.status import led_states, status_line
from octopanel.errors import ConfigError
from octopanel.input.replay import EndOfReplay
from octopanel.panel.gesture_config import KeyTiming, RotaryConfig
from octopanel.panel.gestures import GestureEngine
from octopanel.panel.router import Dispatcher

if TYPE_CHECKING:
    from octopanel.actions.invoke import Context, Result
    from octopanel.actions.registry import Call, Registry
    from octopanel.daemon.control import ControlServer
    from octopanel.daemon.notify import Notifier
    from octopanel.input.devices import DeviceManager
    from octopanel.input.devicespec import DeviceSpec
    from octopanel.panel.keymap import Keymap

log = logging.getLogger("octopanel.daemon.loop")
NO_TIMING = KeyTiming()
FINISH_POLL_S = 0.02


class Daemon:
    """Wires devices → gestures → dispatcher → executor, and runs the loop until stopped."""

    control: "ControlServer | None"

    def __init__(
        self,
        keymap: "Keymap",
        keymap_path: str | Path,
        registry: "Registry",
        ctx: "Context",
        devices_factory: "Callable[[Sequence[DeviceSpec], Callable[..., None]], DeviceManager]",
        notifier: "Notifier",
        control_path: str | Path | None = None,
        control_group: str | None = None,
        exit_at_end: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keymap_path, self.registry, self.ctx, self.notifier = keymap_path, registry, ctx, notifier
        self.clock = clock
        self.exit_at_end = exit_at_end  # replay: stop once the recording ended and the queue is drained
        self.dry_run = False  # --dry-run: the log says what would have been done, in the trace's words
        self.executor = Executor(
            ctx, keymap.settings["stale_s"], keymap.settings["max_outstanding_mm"], clock=clock, on_done=self._done
        )
        self.health = WorkerHealth(
            ctx.settings.connect_timeout, ctx.settings.read_timeout, lambda: ctx.client.server_name
        )
        self._health_note: str | None = None  # the status line's word on a worker hung in a request, if any
        self.dispatch = Dispatcher(keymap, registry, ctx, self.executor, clock, on_panel_change=self._wake)
        self.selector = selectors.DefaultSelector()
        self.device_specs = keymap.devices
        self.devices = devices_factory(keymap.devices, self._device_change)
        self.engine = self._new_engine()
        self.control = None
        if control_path:
            from octopanel.daemon.control import ControlServer

            self.control = ControlServer(
                control_path, self.dispatch.request, self.selector, group=control_group, settings=ctx.settings
            )
        self.connected: set[str] = set()
        self.ended = False
        self.stop_requested = self.reload_requested = False
        self._device_fds: set[int] = set()
        self._fd_generation: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._last_watchdog = 0.0
        self.reloader = KeymapReload(keymap_path, registry, ctx, self._wake)

    # -- setup and teardown ------------------------------------------------------------------

    def _new_engine(self) -> GestureEngine:
        km = self.dispatch.keymap
        rotary = RotaryConfig(
            shuttle=self._is_shuttle, key_pairs=km.key_pairs, shuttle_idle_s=km.settings["shuttle_idle_s"]
        )
        return GestureEngine(lambda key: self.dispatch.keymap.timings.get(key, NO_TIMING), rotary)

    def _is_shuttle(self, label: str) -> bool:
        spec = self.devices.spec(label)
        return (spec is not None and spec.shuttle) or self.dispatch.keymap.shuttle

    def install_signals(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: self._request("reload_requested"))
        signal.signal(signal.SIGTERM, lambda *_: self._request("stop_requested"))
        signal.signal(signal.SIGINT, lambda *_: self._request("stop_requested"))
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    def _request(self, flag: str) -> None:
        setattr(self, flag, True)

    def run(self) -> int:
        """The loop. Returns an exit code."""
        if self.control is not None:  # first: with another daemon on the path, this one sends nothing
            self.control.open()
            log.info("control socket: %s", self.control.path)
        self.selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self.executor.start()
        self.devices.rescan()
        self._sync_fds()
        self.notifier.ready(self.status())
        try:
            while not self.stop_requested:
                self._step()
                if self.reload_requested:
                    self.reload()
                if self.reloader.result is not None:
                    self._reloaded()
                if self.exit_at_end and self.ended and self._drained():
                    break
        finally:
            self.notifier.stopping()
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        self.executor.stop()
        self.devices.close()
        if self.control is not None:
            self.control.close()
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- one turn of the loop ----------------------------------------------------------------

    def _step(self) -> None:
        now = self.clock()
        deadlines = [d - now for d in (self.engine.next_deadline(), self.devices.next_deadline()) if d is not None]
        if self.notifier.watchdog_interval_s and not self.health.hung:  # hung: no pings are due
            deadlines.append(self._last_watchdog + self.notifier.watchdog_interval_s - now)
        if self.ended:
            deadlines.append(FINISH_POLL_S)
        health_due = self.health.next_check_s(self.executor.running())
        if health_due is not None:
            deadlines.append(health_due)
        timeout = max(0.0, min(deadlines)) if deadlines else None  # nothing due: sleep until an fd wakes us
        for key, _mask in self.selector.select(timeout):
            kind, fd = key.data
            if kind == "wake":
                self._drain_wake()
            elif kind == "device":
                for label, events in self.devices.handle_readable(fd):
                    for event in events:
                        for gesture in self.engine.feed(event, label):
                            self.dispatch.gesture(gesture)
            elif kind == "control":
                assert self.control is not None  # only its sockets are registered as "control"
                if fd is None:
                    self.control.accept()
                else:
                    self.control.readable(fd)
        now = self.clock()
        for gesture in self.engine.tick(now):
            self.dispatch.gesture(gesture)
        self.devices.tick(now)
        self._sync_fds()
        self._health_note = self.health.check(self.executor.running())
        # Sent from the loop itself, so a hung loop stops the pings; and withheld while the worker is hung.
        if (
            self.notifier.watchdog_interval_s
            and not self.health.hung
            and now - self._last_watchdog >= self.notifier.watchdog_interval_s
        ):
            self.notifier.watchdog()
            self._last_watchdog = now
        self.notifier.status(self.status())

    def _drained(self) -> bool:
        return self.engine.next_deadline() is None and not self.executor.pending()

    def _sync_fds(self) -> None:
        """Register the devices' fds afresh whenever one was opened or closed (the generation says so): a
        reused fd number is another file, which epoll does not know, though the set of numbers looks the same."""
        generation = self.devices.generation
        if generation == self._fd_generation:
            return
        for fd in self._device_fds:
            self.selector.unregister(fd)  # a closed fd's registration is already gone; selectors allows that
        self._device_fds, self._fd_generation = set(self.devices.fds()), generation
        for fd in self._device_fds:
            self.selector.register(fd, selectors.EVENT_READ, ("device", fd))

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self._update_leds()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\xff")
        except BlockingIOError:
            pass  # already awake

    # -- events from devices and the worker ---------------------------------------------------

    def _device_change(self, label: str, present: bool, error: Exception | None = None) -> None:
        if present:
            self.connected.add(label)  # devices.py has logged it ("using ...")
            self._update_leds()
            return
        self.connected.discard(label)
        if isinstance(error, EndOfReplay):
            # A finished recording is not an unplug: a click waiting for its double window still fires,
            # and what it queued still runs (stale rules still apply).
            for gesture in self.engine.finish(label):
                self.dispatch.gesture(gesture)
            self.ended = not self.connected
        else:
            self.engine.reset(label)  # devices.py has logged the loss and rescans for the device
            self.dispatch.device_lost(label)

    def _done(self, job: "Job | None", call: "Call | None", outcome: "Result | Exception | None") -> None:
        """Called on the worker thread after every job (job None: the worker read the state on its own, at its
        start or when the server answers again after an outage)."""
        if job is None:
            state = self.executor.last_state
            name = state.name if state else "in an unknown state"
            log.info("%s answers; the printer is %s", self.ctx.client.server_name, name)
        elif isinstance(outcome, Exception):
            self.dispatch.refused(job, outcome)
        elif outcome is not None and outcome.text and job.label != "feedback":  # (None only with job None)
            log.info("%s: %s", job.label, f"would {call} (dry run: nothing sent)" if self.dry_run else outcome.text)
        self._wake()

    def _update_leds(self) -> None:
        mode = self.dispatch.keymap.feedback["leds"]
        if mode == "off":
            return
        leds = led_states(mode, self.executor, self.dispatch.panel)
        for label in self.connected:
            for led, on in leds.items():
                self.devices.set_led(label, led, on)

    # -- reload and status ----------------------------------------------------------------------

    def reload(self) -> None:
        """Parse the keymap on a thread (reload.py; the loop keeps reading input with the old one); _reloaded applies it."""
        self.reload_requested = False
        if self.reloader.busy:
            self.reloader.again = True  # changed again while being parsed: parse once more afterwards
            return
        self.notifier.reloading(int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))
        self.reloader.start()

    def _reloaded(self) -> None:
        """On the loop, once the reload thread is done: apply the new keymap, or keep the old one."""
        new = self.reloader.take()
        if isinstance(new, ConfigError):
            log.error("reload failed, keeping the keymap in force: %s", new)
        else:
            self.dispatch.replace_keymap(new)
            self.engine = self._new_engine()
            log.info("keymap reloaded from %s", self.keymap_path)
            if new.devices != self.device_specs:
                log.warning("the devices section changed: restart octopanel to apply it")
        self.notifier.ready(self.status())
        if self.reloader.again:
            self.reloader.again = False
            self.reload()

    def status(self) -> str:
        return status_line(len(self.connected), self._health_note, self.executor, self.dispatch.panel)
