"""Timing servers for the benchmarks: an HTTP stub, or a TCP proxy in front of OctoPrint, that stamp every request.

They run in a child process (`python bench/timing.py stub` or `... proxy HOST:PORT`), so that neither the
benchmark's own threads nor its GIL sit between a request and its timestamp. The child prints
{"url": ...} and then one JSON line per request: "t" arrival and "done" answered (time.monotonic(),
which is CLOCK_MONOTONIC and so comparable across processes), "m" method, "p" path, "b" body, "s" status.
The parent reads them through Recorder.
"""

import json
import os
import queue
import selectors
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
_out_lock = threading.Lock()


def emit(record):
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


# -- the stub: tests/stubserver.py's idle OctoPrint, stamping in its handler -------------------------------


def serve_stub():
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from stubserver import StubServer, idle_octoprint_routes

    def stamped(reply):
        def route(recorded):
            now = time.monotonic()  # the handler has just read the whole request
            emit(
                {
                    "t": now,
                    "done": now,
                    "m": recorded.method,
                    "p": recorded.path,
                    "b": recorded.body.decode(errors="replace"),
                    "s": reply.status,
                }
            )
            return reply

        return route

    stub = StubServer({key: stamped(reply) for key, reply in idle_octoprint_routes().items()})
    # The stub writes a response's headers and body separately; with Nagle on, the body waits for the
    # client's delayed ACK (40 ms on Linux) whenever requests follow each other, as the daemon's do.
    stub.server.RequestHandlerClass.disable_nagle_algorithm = True
    with stub:
        emit({"url": stub.url})
        sys.stdin.read()  # until the parent closes our stdin
        stub.requests.clear()


# -- the proxy: forwards bytes at once, parses both directions only to stamp them --------------------------


class HttpStream:
    """Splits one direction of an HTTP/1.1 connection into messages; calls on_message(start, end, head, body)."""

    def __init__(self, on_message, responses=False):
        self.on_message, self.responses = on_message, responses
        self.buffer = b""
        self.start = None
        self.head = None
        self.need = None  # body bytes still expected, or "chunked"

    def feed(self, data, now):
        self.buffer += data
        while self.buffer:
            if self.start is None:
                self.start = now
            if self.head is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
                self.need = self._body_length(self.head)
            if self.need == "chunked":
                body = self._chunked()
                if body is None:
                    return
            else:
                if len(self.buffer) < self.need:
                    return
                body, self.buffer = self.buffer[: self.need], self.buffer[self.need :]
            self.on_message(self.start, now, self.head, body)
            self.start = self.head = self.need = None

    def _body_length(self, head):
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        if self.responses and lines[0].split()[1] in ("204", "304"):
            return 0
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return "chunked"
        return int(headers.get("content-length", "0"))

    def _chunked(self):
        body, pos = b"", 0
        while True:
            eol = self.buffer.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(self.buffer[pos:eol].split(b";")[0], 16)
            if size == 0:
                end = self.buffer.find(b"\r\n\r\n", eol)  # no trailers expected: the final CRLF
                if end < 0:
                    return None
                self.buffer = self.buffer[end + 4 :]
                return body
            if len(self.buffer) < eol + 2 + size + 2:
                return None
            body += self.buffer[eol + 2 : eol + 2 + size]
            pos = eol + 2 + size + 2


class Pair:
    """One client connection and its upstream connection; requests are answered in order on each."""

    def __init__(self, client, upstream):
        self.client, self.upstream = client, upstream
        self.pending = []
        self.requests = HttpStream(self._request)
        self.responses = HttpStream(self._response, responses=True)

    def _request(self, start, _end, head, body):
        method, path = head.split(" ", 2)[:2]
        self.pending.append({"t": start, "m": method, "p": path, "b": body.decode(errors="replace")})

    def _response(self, _start, end, head, _body):
        record = self.pending.pop(0) if self.pending else {"t": None, "m": "?", "p": "?", "b": ""}
        record.update(done=end, s=int(head.split()[1]))
        emit(record)


def serve_proxy(upstream):
    host, port = upstream.rsplit(":", 1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    emit({"url": f"http://127.0.0.1:{listener.getsockname()[1]}"})
    while True:
        for key, _ in sel.select():
            now = time.monotonic()
            if key.data == "stdin":
                return  # the parent closed our stdin
            if key.data is None:
                client, _ = listener.accept()
                upstream_sock = socket.create_connection((host, int(port)))
                pair = Pair(client, upstream_sock)
                for sock in (client, upstream_sock):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(client, selectors.EVENT_READ, (pair, True))
                sel.register(upstream_sock, selectors.EVENT_READ, (pair, False))
                continue
            pair, from_client = key.data
            src, dst = (pair.client, pair.upstream) if from_client else (pair.upstream, pair.client)
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for sock in (pair.client, pair.upstream):
                    sel.unregister(sock)
                    sock.close()
                continue
            dst.sendall(data)  # forward first, parse after: the stamp costs the traffic nothing
            (pair.requests if from_client else pair.responses).feed(data, now)


# -- the parent's side ---------------------------------------------------------------------------------------


class Recorder:
    """A timing server child process and the queue of its records; a context manager."""

    def __init__(self, mode, upstream=None):
        argv = [sys.executable, os.path.abspath(__file__), mode] + ([upstream] if upstream else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = json.loads(self.proc.stdout.readline())["url"]
        self.records = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.records.put(json.loads(line))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def drain(self):
        """Every record received so far."""
        out = []
        while True:
            try:
                out.append(self.records.get_nowait())
            except queue.Empty:
                return out

    def wait_for(self, predicate, timeout=5.0, seen=None):
        """The first record matching predicate; the others read meanwhile are appended to `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching request reached the timing server")
            try:
                record = self.records.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(record):
                return record
            if seen is not None:
                seen.append(record)


if __name__ == "__main__":
    if sys.argv[1:2] == ["stub"]:
        serve_stub()
    elif sys.argv[1:2] == ["proxy"] and len(sys.argv) == 3:
        serve_proxy(sys.argv[2])
    else:
        sys.exit("usage: timing.py stub | proxy HOST:PORT")
