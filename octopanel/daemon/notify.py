"""systemd notification (READY, STATUS, WATCHDOG, STOPPING, RELOADING); a silent no-op outside systemd."""

import logging
import os
from collections.abc import Mapping

log = logging.getLogger("octopanel.daemon.notify")


class Notifier:
    """Wraps systemd.daemon.notify; never raises, since losing a status line must not stop the panel."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID")
        watchdog_on = usec and usec.isdigit() and (not pid or pid == str(os.getpid()))
        # Ping at half the interval, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval_s = int(usec) / 2e6 if watchdog_on else None
        self._last_status: str | None = None
        self._warned = False

    def send(self, message: str) -> bool:
        if not self.enabled:
            return False
        try:
            from systemd import daemon  # type: ignore[attr-defined]  # systemd-python has no stubs; mypy sees only its __init__

            return bool(daemon.notify(message))
        except (OSError, ImportError, ValueError) as exc:
            # A NOTIFY_SOCKET naming a missing socket makes systemd-python raise: log once, carry on.
            if not self._warned:
                log.warning("cannot notify systemd (%s); continuing without it", exc)
                self._warned = True
            return False

    def ready(self, status: str | None = None) -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))
        self._last_status = status

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def reloading(self, monotonic_usec: int) -> None:
        # systemd ≥ 253 wants MONOTONIC_USEC with RELOADING=1; older versions ignore it.
        self.send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
