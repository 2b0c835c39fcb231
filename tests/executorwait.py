"""Waiting, in tests and benches, until an Executor has run everything it was given (its public pending())."""

import time

from octopanel.daemon.executor import Executor


def wait_idle(executor: Executor, timeout: float = 10.0) -> bool:
    """True once nothing is queued or running; False if that is still not so after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while executor.pending() and time.monotonic() < deadline:
        time.sleep(0.005)
    return not executor.pending()
