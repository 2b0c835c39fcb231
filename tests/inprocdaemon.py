"""The Daemon in this process, its loop in a thread: for tests that drive a fake client, a FakeBus or its internals."""

import threading

from octopanel import settings as settings_mod
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.daemon.loop import Daemon
from octopanel.daemon.notify import Notifier
from octopanel.input.devices import DeviceManager
from octopanel.panel import keymap


def no_devices(_specs, on_change):
    """Nothing to find: the control socket is the only input."""
    return DeviceManager([], lister=lambda: [], opener=None, on_change=on_change, watch_dir=None)


def bus_devices(bus, rescan_interval_s):
    """The keymap's device specs, looked up on a FakeBus (tests/fakedevices.py), rescanned on a timer."""

    def devices(specs, on_change):
        return DeviceManager(
            specs,
            lister=bus.lister,
            opener=bus.opener,
            on_change=on_change,
            watch_dir=None,
            rescan_interval_s=rescan_interval_s,
        )

    return devices


class InProcessDaemon:
    """A Daemon on `keymap_text` (written to tmp_path/keymap_name) and `client`; start() runs its loop in a thread.

    `context` goes to the actions' Context (sleep, out, err)."""

    def __init__(
        self,
        tmp_path,
        keymap_text,
        client,
        devices=no_devices,
        control_path=None,
        keymap_name="keymap.yaml",
        settings=None,
        notifier=None,
        **context,
    ):
        path = tmp_path / keymap_name
        path.write_text(keymap_text)
        settings = settings if settings is not None else settings_mod.load(env={})
        registry = build_registry()
        km = keymap.load(path, registry, settings.limits)
        self.daemon = Daemon(
            km,
            path,
            registry,
            Context(client=client, settings=settings, **context),
            devices,
            notifier if notifier is not None else Notifier(env={}),
            control_path=control_path,
        )
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.daemon.stop_requested = True
        self.daemon._wake()
        self.thread.join(5)
        assert not self.thread.is_alive()
