"""The fast CLI path: hand the command line to a running daemon over its control socket (stdlib only).

Python starts slowly on a Pi and `import requests` alone costs ~90 ms there, so when the daemon is up the
8xxx commands let its warm keep-alive session do the work. The daemon parses the line with the same
registry and answers with the same result; `None` from `run()` means "do it in-process instead", which it
only says while nothing was sent (no daemon accepted the connection, or the daemon answered "local").
Once the request went out, a lost or garbled reply is reported as "may have run", never run a second time.
Before the request, the daemon is asked whether it serves the caller's own settings (same printer, same
limits): if not, the command runs in-process, so a stricter personal config is never bypassed.
"""

from __future__ import annotations

import _socket  # the C module: `import socket` costs ~2.5 ms more, a tenth of this path
import os

from octopanel import settings_sources
from octopanel.daemon import protocol

TYPE_CHECKING = False  # not typing's: the fast path does not import typing
if TYPE_CHECKING:
    from typing import Any

    from _typeshed import SupportsWrite

SOCKET_ENV = "OCTOPANEL_SOCKET"
TIMEOUT_ENV = "OCTOPANEL_SOCKET_TIMEOUT"
TIMEOUT_S = 30.0  # the daemon answers once the action ran; OctoPrint's own timeouts are shorter
CONNECT_WAIT_S = 5.0  # how long a full listen backlog may keep us waiting; nothing is sent meanwhile
CONNECT_RETRY_S = 0.01
# These change what is sent, or where, or what is printed; the in-process path handles them. --force is a
# human's override at a shell: the daemon takes no line carrying it, so it never goes there.
LOCAL_FLAGS = frozenset({"-v", "-vv", "-h", "--help", "--url", "--api-key", "--config", "--backend", "--force"})
LOCAL_ENV = ("OCTOPRINT_URL", "OCTOPRINT_API_KEY", "OCTOPANEL_CONFIG", "OCTOPANEL_BACKEND", "OCTOPANEL_NO_DAEMON")


SYSTEM_RUNTIME_DIR = "/run/octopanel"
SOCKET_NAME = "control.sock"


def runtime_dirs() -> list[str]:
    """Where a daemon's control socket lives, in order: systemd's RuntimeDirectory=, /run/octopanel,
    $XDG_RUNTIME_DIR. The daemon creates its socket in the first usable one; clients look in each."""
    candidates = (
        os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0],
        SYSTEM_RUNTIME_DIR,
        os.environ.get("XDG_RUNTIME_DIR", ""),
    )
    return [d for d in candidates if d]


def socket_path() -> str | None:
    """Where the daemon listens: $OCTOPANEL_SOCKET, else an existing socket in one of runtime_dirs()."""
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return explicit
    return next(
        (os.path.join(d, SOCKET_NAME) for d in runtime_dirs() if os.path.exists(os.path.join(d, SOCKET_NAME))), None
    )


def same_config(sock: _socket.socket) -> bool | dict[str, Any]:
    """Whether the daemon serves the caller's own settings, asked before the command is sent: True, False (also
    for an older daemon that does not know the question, or no answer: nothing was sent, so run it in-process),
    or the daemon's "busy" reply, which turned us away.

    Equal stamps (the same files, unchanged, and the same OCTOPRINT_URL) settle it with a stat() each; else
    the caller's settings are loaded (PyYAML, not requests) and their values compared."""
    answer = ask(sock, {"stamp": settings_sources.caller_stamp()})
    if answer.get("busy"):
        return answer
    if answer.get("same_config") is not False:
        return answer.get("same_config") is True
    try:
        from octopanel import settings

        caller = settings_sources.identity(settings.load())
    except Exception:  # noqa: BLE001  a broken config: the in-process path reports it properly
        return False
    return ask(sock, {"identity": caller}).get("same_config") is True


def ask(sock: _socket.socket, query: dict[str, Any]) -> dict[str, Any]:
    """The daemon's reply to a same_config query; {} when it gave none."""
    reply, _problem, _sent = exchange(sock, protocol.encode_query(query).encode())
    try:
        answer = protocol.decode(reply) if reply is not None else None
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def socket_timeout() -> float:
    """Seconds to wait for the daemon's reply: $OCTOPANEL_SOCKET_TIMEOUT, else TIMEOUT_S; ValueError if bad."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds above 0, got {text!r}; nothing sent")
    return value


def connect(path: str, timeout: float) -> _socket.socket | None:
    """A socket connected to the daemon, or None when no daemon accepted it (no socket, refused: nothing sent).

    Raises BlockingIOError when the daemon's listen backlog stayed full for CONNECT_WAIT_S."""
    deadline: float | None = None
    while True:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:  # EAGAIN: the backlog is full; the daemon is there and will accept soon
            sock.close()
            import time

            deadline = deadline or time.monotonic() + CONNECT_WAIT_S
            if time.monotonic() > deadline:
                raise
            time.sleep(CONNECT_RETRY_S)
        except OSError:
            sock.close()
            return None


def exchange(sock: _socket.socket, request: bytes) -> tuple[bytes | None, str | None, bool]:
    """Send one request line; (the first reply line or None, what went wrong, whether the request went out).

    A failed send transmitted nothing of its own bytes, so the daemon never saw the line's end: not sent."""
    problem: str | None
    sent, problem, reply = False, None, b""
    try:
        sock.sendall(request)
        sent = True
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__  # a busy reply may still be waiting to be read
    try:
        while b"\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                return None, problem or "the daemon closed the connection without a reply", sent
            reply += chunk
    except TimeoutError:
        return None, f"no reply within {sock.gettimeout():g} s", sent
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__, sent
    return reply.split(b"\n", 1)[0], problem, sent


def run(name: str, words: list[str], prog: str, out: SupportsWrite[str], err: SupportsWrite[str]) -> int | None:
    """Run `name words` through the daemon; the exit code, or None to run in-process (nothing was sent)."""
    if any(w.split("=", 1)[0] in LOCAL_FLAGS for w in words):
        return None
    if any(os.environ.get(var) for var in LOCAL_ENV if var != SOCKET_ENV) and not os.environ.get(SOCKET_ENV):
        return None  # the connection was overridden here; the daemon may talk to another printer
    path = socket_path()
    if path is None:
        return None
    try:
        timeout = socket_timeout()
    except ValueError as exc:
        print(f"{prog}: {exc}", file=err)
        return 2
    want_json = "--json" in words
    words = [w for w in words if w != "--json"]
    try:
        sock = connect(path, timeout)
    except BlockingIOError:
        print(f"{prog}: daemon busy: {path} accepted no connection within {CONNECT_WAIT_S:g} s; nothing sent", file=err)
        return 1
    if sock is None:
        return None  # no daemon: the in-process path still works
    try:
        verdict = same_config(sock)
        if isinstance(verdict, dict):
            print(f"{prog}: {verdict.get('error')}", file=err)
            return 1
        if not verdict:
            return None  # the caller's settings are not the daemon's; nothing of the command was sent
        line, problem, sent = exchange(sock, protocol.encode_argv([name, *words]).encode())
    finally:
        sock.close()
    try:
        reply = protocol.decode(line) if line is not None else None
    except ValueError:
        reply, problem = None, "a garbled reply"
    if not isinstance(reply, dict):
        if not sent:
            print(
                f"{prog}: the daemon at {path} closed the connection before the request reached it "
                f"({problem}); nothing sent",
                file=err,
            )
        else:
            print(
                f"{prog}: no answer from the daemon at {path} ({problem or 'a garbled reply'}): the command "
                "may have run; check the printer; not retried",
                file=err,
            )
        return 1
    if reply.get("local"):
        return None  # the daemon says so and ran nothing
    if not reply.get("ok"):
        print(f"{prog}: {reply.get('error')}", file=err)
        return protocol.exit_code(reply)
    if want_json:
        import json  # only here: its output is indented, which _json's encoder does not do

        print(json.dumps(protocol.reply_data(reply), indent=2), file=out)
    elif reply.get("message"):
        print(reply["message"], file=out)
    return 0
