"""A keymap reload off the loop: parsed on a short-lived thread, the result handed back through the wake-up pipe."""

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from octopanel.errors import ConfigError
from octopanel.panel import keymap as keymap_mod

if TYPE_CHECKING:
    from octopanel.actions.invoke import Context
    from octopanel.actions.registry import Registry
    from octopanel.panel.keymap import Keymap

log = logging.getLogger("octopanel.daemon.loop")  # its messages read as the loop's, as before the split


class KeymapReload:
    """One parse at a time; `again` asks for one more after it, for a file changed while being parsed."""

    def __init__(self, path: str | Path, registry: "Registry", ctx: "Context", wake: Callable[[], None]) -> None:
        self.path, self.registry, self.ctx, self.wake = path, registry, ctx, wake
        self.thread: threading.Thread | None = None
        self.result: Keymap | ConfigError | None = None  # set by the thread, taken by the loop
        self.again = False

    @property
    def busy(self) -> bool:
        return self.thread is not None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._parse, name="octopanel-reload", daemon=True)
        self.thread.start()

    def _parse(self) -> None:
        try:
            self.result = keymap_mod.load(self.path, self.registry, self.ctx.limits)
        except ConfigError as exc:
            self.result = exc
        except Exception as exc:  # a bug in validation must not leave the reload pending forever
            log.exception("reload: unexpected error")
            self.result = ConfigError(f"internal error: {type(exc).__name__}: {exc}", str(self.path))
        self.wake()

    def take(self) -> "Keymap | ConfigError":
        """On the loop, once `result` is set: the new keymap or why it was refused; the thread is joined."""
        new, self.result = self.result, None
        assert self.thread is not None and new is not None  # _parse set the result
        self.thread.join()
        self.thread = None
        return new
