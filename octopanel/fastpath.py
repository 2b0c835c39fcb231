"""The fast CLI path: hand the command line to a running daemon over its control socket (stdlib only).

Python starts slowly on a Pi and `import requests` alone costs ~90 ms there, so when the daemon is up the
8xxx commands let its warm keep-alive session do the work. The daemon parses the line with the same
registry and answers with the same result; `None` from `run()` means "do it in-process instead".
"""

import _socket  # the C module: `import socket` costs ~2.5 ms more, a tenth of this path
import os

try:  # json's C half: `import json` pulls in `re` and `enum`, ~5 ms, a third of this path
    from _json import encode_basestring_ascii, make_scanner
except ImportError:  # not CPython
    encode_basestring_ascii = make_scanner = None

SOCKET_ENV = "OCTOPANEL_SOCKET"
TIMEOUT_S = 30.0  # the daemon answers once the action ran; OctoPrint's own timeouts are shorter
# These change what is sent, or where, or what is printed; the in-process path handles them.
LOCAL_FLAGS = frozenset({"-v", "-vv", "-h", "--help", "--url", "--api-key", "--config"})
LOCAL_ENV = ("OCTOPRINT_URL", "OCTOPRINT_API_KEY", "OCTOPANEL_CONFIG", "OCTOPANEL_NO_DAEMON")


SYSTEM_RUNTIME_DIR = "/run/octopanel"
SOCKET_NAME = "control.sock"


def runtime_dirs():
    """Where a daemon's control socket lives, in order: systemd's RuntimeDirectory=, /run/octopanel,
    $XDG_RUNTIME_DIR. The daemon creates its socket in the first usable one; clients look in each."""
    candidates = (os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0], SYSTEM_RUNTIME_DIR,
                  os.environ.get("XDG_RUNTIME_DIR", ""))
    return [d for d in candidates if d]


def socket_path():
    """Where the daemon listens: $OCTOPANEL_SOCKET, else an existing socket in one of runtime_dirs()."""
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return explicit
    return next((os.path.join(d, SOCKET_NAME) for d in runtime_dirs()
                 if os.path.exists(os.path.join(d, SOCKET_NAME))), None)


class _Decoding:
    """What _json's scanner reads from a JSONDecoder: the defaults of json.loads."""

    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = float  # NaN, Infinity, -Infinity
    memo = {}


def encode_request(words):
    """The request line json.dumps({"argv": words}) would write, without importing json."""
    if encode_basestring_ascii is None:
        import json

        return json.dumps({"argv": words}) + "\n"
    return '{"argv": [' + ", ".join(map(encode_basestring_ascii, words)) + ']}\n'


def decode_reply(line):
    """json.loads of one reply line (bytes); ValueError if it is not one JSON value."""
    text = line.decode("utf-8").strip()
    if make_scanner is None:
        import json

        return json.loads(text)
    try:
        value, end = make_scanner(_Decoding)(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def exchange(path, request):
    """Send one request line, return the first reply line (bytes)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(TIMEOUT_S)
        sock.connect(path)
        sock.sendall(request)
        reply = b""
        while b"\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply.split(b"\n", 1)[0]
    finally:
        sock.close()


def run(name, words, prog, out, err):
    """Run `name words` through the daemon; the exit code, or None to fall back to in-process."""
    if any(w.split("=", 1)[0] in LOCAL_FLAGS for w in words):
        return None
    if any(os.environ.get(var) for var in LOCAL_ENV if var != SOCKET_ENV) and not os.environ.get(SOCKET_ENV):
        return None  # the connection was overridden here; the daemon may talk to another printer
    path = socket_path()
    if path is None:
        return None
    want_json = "--json" in words
    words = [w for w in words if w != "--json"]
    try:
        reply = decode_reply(exchange(path, encode_request([name, *words]).encode()) or b"null")
    except (OSError, ValueError):
        return None  # no daemon, or it went away: the in-process path still works
    if not isinstance(reply, dict) or reply.get("local"):
        return None
    if not reply.get("ok"):
        print(f"{prog}: {reply.get('error')}", file=err)
        return int(reply.get("exit", 1))
    if want_json:
        data = reply.get("data")
        if data is None:  # as Result.as_json, which this stdlib-only path does not import
            data = {"action": reply.get("action"), "sent": reply.get("sent"), "message": reply.get("message")}
        import json  # only here: its output is indented, which _json's encoder does not do

        print(json.dumps(data, indent=2), file=out)
    elif reply.get("message"):
        print(reply["message"], file=out)
    return 0
