"""The control socket: a Unix stream socket taking action lines and answering one JSON line each.

Scripts (a runout sensor, a vision check) and the fast CLI send `pause\\n` or `jog z=1\\n`; the daemon
runs them through the same registry, the same state checks and the same ordered queue as the keypad.
"""

import grp
import json
import logging
import os
import selectors
import socket
import stat
import threading

log = logging.getLogger("octopanel.control")
MAX_LINE = 4096  # an action line is short; anything longer is garbage or an attack
MAX_CLIENTS = 32


class Conn:
    """One client: its socket, the bytes of an unfinished line, and a lock for replies from the worker."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.lock = threading.Lock()
        self.closed = False
        self.pending = 0  # lines handed on whose reply has not been sent yet
        self.eof = False  # the client shut down its side (`echo pause | socat ...`): close after the last reply

    def reply(self, obj):
        data = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()
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
    """Listens on `path`; hands each complete line to `on_line(line, reply)`; never blocks on a client."""

    def __init__(self, path, on_line, selector, mode=0o660, group=None):
        self.path, self.on_line, self.mode, self.group = str(path), on_line, mode, group
        self.selector = selector  # the daemon's; listening and client sockets are registered as "control"
        self.sock = None
        self.conns = {}

    def open(self):
        if os.path.lexists(self.path) and not stat.S_ISSOCK(os.lstat(self.path).st_mode):
            raise OSError(f"{self.path} exists and is not a socket")
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # Bound under a temporary name and renamed into place once listening: a client that sees the path
        # can connect (between bind and listen it would be refused). The rename replaces a stale socket.
        building = os.path.join(os.path.dirname(self.path), f".{os.getpid()}.new")  # short: sun_path has 108 bytes
        if os.path.lexists(building):
            os.unlink(building)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # never let the socket exist, even briefly, with wider permissions
        try:
            self.sock.bind(building)
        finally:
            os.umask(old)
        try:
            if self.group:
                try:
                    os.chown(building, -1, grp.getgrnam(self.group).gr_gid)
                except (KeyError, PermissionError) as exc:
                    log.warning("cannot give %s to group %s: %s", self.path, self.group, exc)
            os.chmod(building, self.mode)
            self.sock.listen(16)
            os.rename(building, self.path)
        except BaseException:
            self.sock.close()
            os.unlink(building)
            raise
        self.sock.setblocking(False)
        self.selector.register(self.sock, selectors.EVENT_READ, ("control", None))
        return self

    def fileno(self):
        return self.sock.fileno()

    def accept(self):
        """Accept one pending client; returns its Conn (for the caller's selector) or None."""
        try:
            sock, _addr = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        sock.setblocking(False)
        for fd in [fd for fd, c in self.conns.items() if c.closed and c.eof]:
            del self.conns[fd]  # half-closed clients whose last reply went out
        if len(self.conns) >= MAX_CLIENTS:
            oldest = next(iter(self.conns))
            self.close_conn(oldest)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, ("control", sock.fileno()))
        return conn

    def readable(self, fd):
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
            conn.reply({"ok": False, "error": f"line longer than {MAX_LINE} bytes", "exit": 2})
            self.close_conn(fd)
            return False
        return True

    def handle_line(self, conn, raw):
        text = raw.decode("utf-8", "replace").strip()
        if len(raw) <= MAX_LINE and (not text or text.startswith("#")):
            return  # blank lines and comments get no reply
        with conn.lock:
            conn.pending += 1  # every other line gets exactly one reply, perhaps later from the worker thread
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            conn.reply({"ok": False, "error": "the line is not UTF-8 text", "exit": 2})
            return
        if len(raw) > MAX_LINE:
            conn.reply({"ok": False, "error": f"line longer than {MAX_LINE} bytes", "exit": 2})
            return
        try:
            self.on_line(line, conn.reply)
        except Exception as exc:  # a bad line must never take the daemon down
            log.exception("control line %r failed", line)
            conn.reply({"ok": False, "error": f"internal error: {exc}", "exit": 1})

    def close_conn(self, fd):
        conn = self.conns.pop(fd, None)
        if conn is not None:
            with conn.lock:
                if not conn.eof:
                    self.selector.unregister(conn.sock)
                conn.closed = True
                conn.sock.close()

    def close(self):
        for fd in list(self.conns):
            self.close_conn(fd)
        if self.sock is not None:
            self.selector.unregister(self.sock)
            self.sock.close()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
