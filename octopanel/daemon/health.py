"""Worker health: a request hung past the HTTP timeouts shows in the status line, then stops the watchdog.

A server that drips a byte now and then defeats a per-read timeout, so the worker can hang while the loop
stays healthy and would keep pinging systemd. The loop asks this module each turn instead: past SLOW the
status line says the server is unreachable; past HUNG the daemon stops pinging the watchdog (systemd then
restarts it, with WatchdogSec=) and says so in the log.
"""

import logging
from collections.abc import Callable

log = logging.getLogger("octopanel.daemon.loop")
MARGIN_S = 5.0  # slack over the configured timeouts: DNS, TLS set-up, a busy Pi
# One attempt of a job makes at most this many requests (a state read, the profile, the action's own calls),
# each of which should end within connect_timeout + read_timeout.
REQUESTS_PER_ATTEMPT = 3


class WorkerHealth:
    """Judges executor.running() against bounds derived from the client's timeouts."""

    def __init__(self, connect_timeout: float, read_timeout: float, server: Callable[[], str]) -> None:
        request_s = connect_timeout + read_timeout
        self.slow_after_s = request_s + MARGIN_S
        self.hung_after_s = REQUESTS_PER_ATTEMPT * request_s + MARGIN_S
        self.hung = False
        self.server = server  # its name, for messages

    def check(self, running: tuple[str, float] | None) -> str | None:
        """`running`: (label, seconds) or None. Returns the status line's printer part, or None if all is well;
        sets `hung` (no watchdog pings) and logs each change once."""
        seconds = running[1] if running is not None else 0.0
        hung = seconds > self.hung_after_s
        if hung and not self.hung:
            assert running is not None  # hung implies seconds > 0, so a running attempt
            log.error(
                "the worker has waited %.0f s for %s (%s), past %.0f s: no longer pinging the "
                "systemd watchdog, so that systemd restarts octopanel",
                seconds,
                self.server(),
                running[0],
                self.hung_after_s,
            )
        elif self.hung and not hung:
            log.warning("the worker is free again; pinging the systemd watchdog again")
        self.hung = hung
        if seconds <= self.slow_after_s:
            return None
        assert running is not None  # slow implies seconds > 0
        return f"{self.server()} unreachable: no answer for {seconds:.0f} s ({running[0]})" + (
            ", worker stuck, watchdog stopped" if hung else ""
        )

    def next_check_s(self, running: tuple[str, float] | None) -> float | None:
        """Seconds until check() has news for a worker `running` (label, seconds), or None when it is idle:
        the moment it turns slow or hung, then every second while slow (the status line counts the wait)."""
        if running is None:
            return None
        seconds = running[1]
        if seconds <= self.slow_after_s:
            return self.slow_after_s - seconds + 0.01
        return min(1.0, max(0.01, self.hung_after_s - seconds + 0.01)) if not self.hung else 1.0
