"""The control socket: a Unix stream socket taking action lines and answering one JSON line each.

Scripts (a runout sensor, a vision check) and the fast CLI send `pause\\n` or `jog z=1\\n`; the daemon
runs them through the same registry, the same state checks and the same ordered queue as the keypad.
A client whose line is queued or running is never dropped: under overload a new client is told "busy".
One daemon per path: a socket somebody answers on is never replaced, and only our own socket is unlinked.
Messages are protocol.py's; a same_config query (cli/fast.py asks before each command) is answered here at
once and runs nothing.
"""

import grp
import logging
import os
import select
import selectors
import socket
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from octopanel.daemon import protocol
from octopanel.daemon.protocol import MAX_LINE, busy
from octopanel.errors import UsageError

if TYPE_CHECKING:
    from octopanel.settings import Settings

log = logging.getLogger("octopanel.daemon.control")
MAX_CLIENTS = 256  # each waiting 8xxx command holds one; 200 at once must all be answered
BACKLOG = 512  # connections the kernel holds until the loop accepts them (capped by net.core.somaxconn)
CLAIM_ATTEMPTS = 3


class Conn:
    """One client: its socket, the bytes of an unfinished line, and a lock for replies from the worker."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.lock = threading.Lock()
        self.closed = False
        self.pending = 0  # lines handed on whose reply has not been sent yet
        self.eof = False  # the client shut down its side (`echo pause | socat ...`): close after the last reply

    def wanted(self) -> bool:
        """True while the client still waits for its reply: a job checks it right before sending. A client
        that closed its socket (it timed out, or was killed) hangs up (POLLHUP); one that only shut down
        writing (`socat -t 30`) does not."""
        with self.lock:  # close_conn closes the socket under this lock, so the fd is ours while we poll
            if self.closed:
                return False
            poller = select.poll()
            poller.register(self.sock, select.POLLHUP)
            return not any(mask & (select.POLLHUP | select.POLLERR) for _fd, mask in poller.poll(0))

    def reply(self, obj: dict[str, Any]) -> None:
        data = protocol.encode_reply(obj)
        with self.lock:
            self.pending = max(0, self.pending - 1)
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True  # the client left or stopped reading; its replies are dropped
            if self.eof and not self.pending:
                self.closed = True
                self.sock.close()


class ControlServer:
    """Listens on `path`; hands each request to `on_line(kind, payload, reply, wanted)`; never blocks on a client."""

    def __init__(
        self,
        path: "str | os.PathLike[str]",
        on_line: "Callable[[str, Any, Callable[[dict[str, Any]], None], Callable[[], bool]], None]",
        selector: selectors.BaseSelector,
        mode: int = 0o660,
        group: str | None = None,
        settings: "Settings | None" = None,
    ) -> None:
        self.path, self.on_line, self.mode, self.group = str(path), on_line, mode, group
        self.settings = settings  # the daemon's config.Settings, for same_config; None: it matches nobody
        self.selector = selector  # the daemon's; listening and client sockets are registered as "control"
        self.sock: socket.socket | None = None
        self.conns: dict[int, Conn] = {}
        self.identity: tuple[int, int] | None = (
            None  # (st_dev, st_ino) of the socket file we created: the only one close() unlinks
        )

    def open(self) -> "ControlServer":
        """Listen on the path; UsageError (exit 2) if another daemon answers there or the path is unusable."""
        try:
            self._remove_stale()
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._bind()
        except OSError as exc:
            raise UsageError(
                f"control socket {self.path}: {exc.strerror or exc}; give --control PATH or --no-control"
            ) from None
        assert self.sock is not None  # _bind made it
        self.sock.setblocking(False)
        self.selector.register(self.sock, selectors.EVENT_READ, ("control", None))
        return self

    def _answers(self) -> bool:
        """True if a daemon listens on the path (it accepts, or its backlog is full); OSError if we cannot tell."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            try:
                probe.connect(self.path)
            except BlockingIOError:
                return True
            except (ConnectionRefusedError, FileNotFoundError):
                return False
            return True

    def _remove_stale(self) -> None:
        """Unlink a socket file left by a daemon that died; refuse to touch anything else."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError(f"control socket {self.path}: exists and is not a socket; nothing was changed")
        if self._answers():
            raise UsageError(
                f"control socket {self.path}: another octopanel daemon answers there; stop it first "
                "(systemctl stop octopanel), or give this one --control PATH or --no-control"
            )
        try:
            again = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino):  # still the file nobody answered on
            os.unlink(self.path)
            log.info("removed the stale control socket %s (nobody answered on it)", self.path)

    def _bind(self) -> None:
        # Bound under a temporary name and linked into place once listening: a client that sees the path
        # can connect (between bind and listen it would be refused), and link() fails if the path exists,
        # so a daemon that started meanwhile is never replaced.
        building = os.path.join(os.path.dirname(self.path), f".{os.getpid()}.new")  # short: sun_path has 108 bytes
        if os.path.lexists(building):
            os.unlink(building)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # never let the socket exist, even briefly, with wider permissions
        try:
            self.sock.bind(building)
        except BaseException:
            self.sock.close()
            raise
        finally:
            os.umask(old)
        try:
            if self.group:
                try:
                    os.chown(building, -1, grp.getgrnam(self.group).gr_gid)
                except (KeyError, PermissionError) as exc:
                    log.warning("cannot give %s to group %s: %s", self.path, self.group, exc)
            os.chmod(building, self.mode)
            self.sock.listen(BACKLOG)
            st = os.lstat(building)
            for _attempt in range(CLAIM_ATTEMPTS):
                try:
                    os.link(building, self.path)
                    break
                except FileExistsError:
                    self._remove_stale()  # raises if what appeared there answers
            else:
                raise UsageError(f"control socket {self.path}: keeps reappearing; is another daemon starting?")
            self.identity = (st.st_dev, st.st_ino)
        except BaseException:
            self.sock.close()
            raise
        finally:
            os.unlink(building)

    def fileno(self) -> int:
        assert self.sock is not None, "open() first"
        return self.sock.fileno()

    def accept(self) -> Conn | None:
        """Accept one pending client; returns its Conn (for the caller's selector) or None."""
        assert self.sock is not None, "open() first"
        try:
            sock, _addr = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        sock.setblocking(False)
        for fd in [fd for fd, c in self.conns.items() if c.closed and c.eof]:
            del self.conns[fd]  # half-closed clients whose last reply went out
        conn = Conn(sock)
        if len(self.conns) >= MAX_CLIENTS:
            self.read_unread_lines()
        if len(self.conns) >= MAX_CLIENTS:
            # Make room by closing the oldest client that waits for nothing; one whose line is queued or
            # running keeps its connection. With none idle, the newcomer is told at once.
            idle = next((fd for fd, c in self.conns.items() if not c.pending and not c.eof), None)
            if idle is None:
                log.warning("control socket: %d clients wait for replies; a new one was told busy", MAX_CLIENTS)
                conn.reply(busy(f"{MAX_CLIENTS} clients are waiting for replies; try again shortly"))
                sock.close()
                return None
            self.conns[idle].reply(busy("too many clients: this idle connection was closed to make room"))
            self.close_conn(idle)
        self.conns[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, ("control", sock.fileno()))
        return conn

    def read_unread_lines(self) -> None:
        """Read what the idle clients sent but the loop has not read yet: a client whose line is still in its
        socket is not idle, and must not be the one closed to make room (it would be told "busy" for a line
        it had already sent)."""
        idle = {c.sock.fileno(): fd for fd, c in self.conns.items() if not c.pending and not c.eof and not c.closed}
        if not idle:
            return
        poller = select.poll()
        for sock_fd in idle:
            poller.register(sock_fd, select.POLLIN)
        for sock_fd, _events in poller.poll(0):
            self.readable(idle[sock_fd])

    def readable(self, fd: int) -> bool:
        """Read what a client sent; run each complete line. Returns False once the client is gone."""
        conn = self.conns.get(fd)
        if conn is None:
            return False
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        if not data:
            with conn.lock:
                if conn.pending and not conn.closed:
                    self.selector.unregister(conn.sock)  # read no more, but the replies still go out
                    conn.eof = True
                    return False
            self.close_conn(fd)
            return False
        conn.buffer += data
        while b"\n" in conn.buffer:
            raw, conn.buffer = conn.buffer.split(b"\n", 1)
            self.handle_line(conn, raw)
        if len(conn.buffer) > MAX_LINE:
            conn.reply(protocol.failed(f"line longer than {MAX_LINE} bytes", 2))
            self.close_conn(fd)
            return False
        return True

    def handle_line(self, conn: Conn, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if len(raw) <= MAX_LINE and (not text or text.startswith("#")):
            return  # blank lines and comments get no reply
        with conn.lock:
            conn.pending += 1  # every other line gets exactly one reply, perhaps later from the worker thread
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            conn.reply(protocol.failed("the line is not UTF-8 text", 2))
            return
        if len(raw) > MAX_LINE:
            conn.reply(protocol.failed(f"line longer than {MAX_LINE} bytes", 2))
            return
        try:
            kind, payload = protocol.parse_request(line)
        except protocol.ProtocolError as exc:
            conn.reply(protocol.failed(str(exc), 2))
            return
        if kind == protocol.SAME_CONFIG:
            conn.reply(self.same_config(payload))
            return
        try:
            self.on_line(kind, payload, conn.reply, conn.wanted)
        except Exception as exc:  # a bad line must never take the daemon down
            log.exception("control line %r failed", line)
            conn.reply(protocol.failed(f"internal error: {exc}", 1))

    def same_config(self, query: Any) -> dict[str, Any]:
        """The answer to a fast CLI asking whether it may hand us its command (see cli.fast.same_config)."""
        if self.settings is None:
            return protocol.config_answer(False)
        from octopanel.settings_sources import same_as

        try:
            same = same_as(self.settings, query)
        except (AttributeError, KeyError, TypeError):  # settings of another shape (a test's fake): not the same
            same = False
        return protocol.config_answer(same)

    def close_conn(self, fd: int) -> None:
        conn = self.conns.pop(fd, None)
        if conn is not None:
            with conn.lock:
                if not conn.eof:
                    self.selector.unregister(conn.sock)
                conn.closed = True
                conn.sock.close()

    def close(self) -> None:
        for fd in list(self.conns):
            self.close_conn(fd)
        if self.sock is not None:
            self.selector.unregister(self.sock)
            self.sock.close()
            try:
                st = os.lstat(self.path)
            except FileNotFoundError:
                return
            if (st.st_dev, st.st_ino) == self.identity:  # never a socket another daemon put there since
                os.unlink(self.path)
