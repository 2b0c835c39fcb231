"""One deadline for a whole HTTP answer, headers included: each socket read gets only the time that is left.

urllib3 times each socket read separately, so a server dripping a status line or headers a byte at a time
holds a request for ever. Here the connection reads the answer through a socket wrapper that shortens every
read to the deadline, which the Client sets per request in `Deadlines`.
"""

import io
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class Deadlines(threading.local):
    """This thread's current request: `at` (a monotonic time), else `after_send_s` from when the body went out."""

    at: float | None = None
    after_send_s: float | None = None


class DeadlineSocket:
    """A socket whose reads end by `deadline`; everything else goes to the real socket."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive by its deadline")
        per_read = self._sock.gettimeout()
        self._sock.settimeout(left if per_read is None else min(per_read, left))
        try:
            return self._sock.recv_into(buffer, nbytes, flags)
        finally:
            self._sock.settimeout(per_read)

    def makefile(self, mode: str = "rb", buffering: int | None = -1, **_: Any) -> io.BufferedReader:
        # http.client reads the answer through this file: it must call our recv_into, not the socket's.
        self._sock._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile does: SocketIO.close() gives the reference back
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]  # duck-typed: SocketIO only calls recv_into
        return io.BufferedReader(raw, io.DEFAULT_BUFFER_SIZE if buffering in (-1, None) else buffering)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def with_deadline(connection_cls: type[Any], deadlines: Deadlines) -> type[Any]:
    """A subclass of urllib3's `connection_cls` that reads each answer under `deadlines`."""

    class DeadlineConnection(connection_cls):  # a base chosen at run time (type[Any])
        sock: Any  # urllib3's connection sets it

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            deadline = deadlines.at
            if deadline is None and deadlines.after_send_s is not None:
                deadline = time.monotonic() + deadlines.after_send_s
            real = self.sock
            if deadline is None or real is None:
                return super().getresponse(*args, **kwargs)
            self.sock = DeadlineSocket(real, deadline)
            try:
                return super().getresponse(*args, **kwargs)
            finally:
                if self.sock is not None:  # http.client drops it when the server closes after answering
                    self.sock = real

    return DeadlineConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with every pool it hands out making DeadlineConnections."""

    def __init__(self, deadlines: Deadlines, **kwargs: Any) -> None:
        self.deadlines = deadlines
        self._classes: dict[type[Any], type[Any]] = {}
        super().__init__(**kwargs)

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        return self._watched(super().get_connection_with_tls_context(*args, **kwargs))

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:  # requests before 2.32
        return self._watched(super().get_connection(*args, **kwargs))

    def _watched(self, pool: Any) -> Any:
        base = pool.ConnectionCls
        if not getattr(base, "_octopanel_deadline", False):
            if base not in self._classes:
                self._classes[base] = with_deadline(base, self.deadlines)
                self._classes[base]._octopanel_deadline = True
            pool.ConnectionCls = self._classes[base]  # read by the pool whenever it opens a connection
        return pool


def install(session: requests.Session) -> Deadlines:
    """Mount a DeadlineAdapter on `session` for http and https; return the Deadlines the caller sets."""
    deadlines = Deadlines()
    adapter = DeadlineAdapter(deadlines)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return deadlines
