"""An in-process HTTP stub on port 0 for faults a real OctoPrint cannot produce on demand.

Routes map (method, path without query) to a Reply; every request is recorded, body included, so a
test can check exactly what the client sent. Unrouted paths answer 404 like OctoPrint does.
"""

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Reply:
    """What the stub answers: status, body (dict/list → JSON, str/bytes as is), extra headers, delay.

    raw: instead, a function (wfile, closing) that writes the whole answer, status line included, itself;
    `closing` is an Event set when the stub shuts down (a dripping writer should stop then)."""

    status: int = 200
    body: object = None
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    raw: object = None
    discard_body: bool = False  # read the request body in chunks and keep only its size and SHA-256


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict
    body: bytes
    size: int = 0
    sha256: str = ""

    def json(self):
        return json.loads(self.body)


class StubServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; use as a context manager."""

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like OctoPrint
            disable_nagle_algorithm = True  # else back-to-back keep-alive requests stall 40 ms

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                reply = stub.routes.get((self.command, urlsplit(self.path).path))
                if getattr(reply, "discard_body", False):
                    body, digest, left = b"", hashlib.sha256(), length
                    while left:
                        chunk = self.rfile.read(min(left, 1 << 20))
                        if not chunk:
                            break
                        digest.update(chunk)
                        left -= len(chunk)
                    recorded = Recorded(
                        self.command, self.path, dict(self.headers), b"", length - left, digest.hexdigest()
                    )
                else:
                    body = self.rfile.read(length) if length else b""
                    recorded = Recorded(self.command, self.path, dict(self.headers), body, len(body))
                with stub._lock:
                    stub.requests.append(recorded)
                if reply is None:
                    reply = Reply(404, {"error": "stub: no route"})
                if callable(reply):
                    reply = reply(stub.requests[-1])
                if reply.delay_s and stub._closing.wait(reply.delay_s):
                    return  # shutting down: drop the answer
                if reply.raw is not None:
                    try:
                        reply.raw(self.wfile, stub._closing)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up, as it should
                    self.close_connection = True
                    return
                payload = reply.body
                content_type = "text/plain"
                if isinstance(payload, (dict, list)):
                    payload, content_type = json.dumps(payload).encode(), "application/json"
                elif isinstance(payload, str):
                    payload = payload.encode()
                elif payload is None:
                    payload = b""
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": content_type, "Content-Length": str(len(payload)), **reply.headers}
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (read timeout): nothing to answer

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def route(self, method, path, reply):
        self.routes[(method, path)] = reply

    def received(self, method=None, path_prefix=""):
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and urlsplit(r.path).path.startswith(path_prefix)
            ]


IDLE_PRINTER = {
    "state": {
        "text": "Operational",
        "flags": {
            "operational": True,
            "ready": True,
            "printing": False,
            "paused": False,
            "pausing": False,
            "cancelling": False,
            "resuming": False,
            "finishing": False,
            "error": False,
            "closedOrError": False,
            "sdReady": False,
        },
    }
}
DEFAULT_PROFILES = {
    "profiles": {
        "_default": {
            "id": "_default",
            "current": True,
            "default": True,
            "axes": {a: {"inverted": False, "speed": 6000} for a in "xyze"},
        }
    }
}


def idle_octoprint_routes(prefix=""):
    """Enough of OctoPrint for the state guard, the profile and a version call to succeed."""
    return {
        ("GET", prefix + "/api/version"): Reply(200, {"api": "0.1", "server": "1.11.8", "text": "OctoPrint 1.11.8"}),
        ("GET", prefix + "/api/printer"): Reply(200, IDLE_PRINTER),
        ("GET", prefix + "/api/printerprofiles"): Reply(200, DEFAULT_PROFILES),
        ("GET", prefix + "/api/connection"): Reply(200, {"current": {"state": "Operational"}}),
        ("POST", prefix + "/api/printer/printhead"): Reply(204),
        ("POST", prefix + "/api/printer/tool"): Reply(204),
        ("POST", prefix + "/api/printer/command"): Reply(204),
    }
