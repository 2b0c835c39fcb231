"""A server that drips, floods, nests or redirects cannot hang, exhaust or steer the client (issue 10 §1, §3).

Real sockets against the stub on port 0; each case is one a real OctoPrint cannot be made to produce.
"""

import os
import subprocess
import time

import pytest
from stubserver import Reply, StubServer, idle_octoprint_routes
from test_stub_faults import BIN, KEY, assert_clean_failure

from octopanel.errors import PrinterError, ServerError, Unreachable
from octopanel.printers.octoprint.client import Client

HANG_S = 30  # the old code never ended: give up on it here rather than at run_cli's 60 s


def config(stub, read_timeout=1):
    return f"url: {stub.url}\napi_key: {KEY}\nread_timeout: {read_timeout}\n"


def run_bounded(tmp_path, command, *args, config):
    """An installed 8xxx script with only this config (like test_stub_faults.run_cli); a hang fails after HANG_S."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OCTOPRINT_", "OCTOPANEL_", "XDG_CONFIG_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc")
    }
    path = tmp_path / "config.yaml"
    path.write_text(config)
    path.chmod(0o600)
    env.update(HOME=str(tmp_path), OCTOPANEL_CONFIG=str(path))
    try:
        return subprocess.run(
            [str(BIN / command), *map(str, args)], env=env, capture_output=True, text=True, timeout=HANG_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command} still running after {HANG_S} s")


def dripping(chunked, interval_s=0.3, for_s=20):
    """A raw answer whose JSON body comes one byte per interval_s: never slow enough for a per-read timeout.

    It hangs up after for_s, so that a client without a deadline (the old code) fails instead of hanging."""

    def write(wfile, closing):
        ends = time.monotonic() + for_s
        framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 100000"
        wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())
        wfile.write(b"1\r\n[\r\n" if chunked else b"[")
        wfile.flush()
        while not closing.wait(interval_s) and time.monotonic() < ends:
            wfile.write(b"1\r\n1\r\n" if chunked else b"1")
            wfile.flush()

    return write


def flooding(total_bytes, declared=None):
    """A raw answer of total_bytes of JSON-ish digits (declared: a Content-Length, else chunked)."""

    def write(wfile, closing):
        framing = f"Content-Length: {declared}" if declared else "Transfer-Encoding: chunked"
        wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())
        block, sent = b"1" * (1 << 20), 0
        while sent < total_bytes and not closing.is_set():
            wfile.write(block if declared else b"%x\r\n%s\r\n" % (len(block), block))
            sent += len(block)
        if not declared:
            wfile.write(b"0\r\n\r\n")

    return write


@pytest.fixture
def stub():
    with StubServer(idle_octoprint_routes()) as server:
        yield server


# -- one deadline for the whole answer -------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_dripping_answer_ends_at_the_deadline(stub, chunked):
    stub.route("GET", "/api/version", Reply(raw=dripping(chunked)))
    client = Client(stub.url, KEY, connect_timeout=1, read_timeout=1)
    started = time.monotonic()
    with pytest.raises(Unreachable, match="did not answer in time"):
        client.version()
    assert time.monotonic() - started < 5
    client.close()


def dripping_headers(interval_s=0.3, for_s=20):
    """A raw answer whose header lines come one byte per interval_s (and never end, until for_s)."""

    def write(wfile, closing):
        ends = time.monotonic() + for_s
        wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not closing.wait(interval_s) and time.monotonic() < ends:
            wfile.write(b"z")
            wfile.flush()

    return write


def test_dripping_headers_end_at_the_deadline(stub):
    stub.route("GET", "/api/version", Reply(raw=dripping_headers()))
    client = Client(stub.url, KEY, connect_timeout=1, read_timeout=1)
    started = time.monotonic()
    with pytest.raises(Unreachable, match="did not answer in time"):
        client.version()
    assert time.monotonic() - started < 5
    client.close()


def test_a_dripping_answer_through_8status(stub, tmp_path):
    stub.route("GET", "/api/connection", Reply(raw=dripping(chunked=False)))
    started = time.monotonic()
    proc = run_bounded(tmp_path, "8status", config=config(stub))
    elapsed = time.monotonic() - started
    assert_clean_failure(proc, 1, "did not answer in time")
    assert elapsed < 10, elapsed


def test_the_client_still_works_after_a_deadline(stub):
    stub.route("GET", "/api/connection", Reply(raw=dripping(chunked=True)))
    client = Client(stub.url, KEY, connect_timeout=1, read_timeout=1)
    with pytest.raises(Unreachable):
        client.connection()
    assert client.version()["server"] == "1.11.8"  # the dripping connection was dropped, not reused
    client.close()


# -- bodies have a size cap -----------------------------------------------------------------------------------


def test_a_huge_declared_body_is_refused_unread(stub):
    stub.route("GET", "/api/version", Reply(raw=flooding(16 << 20, declared=4 << 30)))
    client = Client(stub.url, KEY)
    with pytest.raises(ServerError, match="4294967296 bytes, more than the 8388608 expected"):
        client.version()
    client.close()


def test_a_huge_chunked_body_is_cut_off_at_the_cap(stub, tmp_path):
    stub.route("GET", "/api/version", Reply(raw=flooding(20 << 20)))  # the old code read all 20 MB
    proc = run_bounded(tmp_path, "8apiver", config=config(stub, read_timeout=10))
    assert_clean_failure(proc, 1, "more than the 8388608 bytes expected")


def test_a_huge_error_page_is_cut_off_too(stub):
    def write(wfile, closing):
        wfile.write(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: 1048576\r\n\r\n")
        wfile.write(b"x" * (1 << 20))

    stub.route("GET", "/api/version", Reply(raw=write))
    client = Client(stub.url, KEY)
    with pytest.raises(ServerError, match="more than the 65536 expected"):
        client.version()
    client.close()


# -- JSON that is too deep is a bad reply, not an internal error ---------------------------------------------------


@pytest.mark.parametrize("depth", [150, 100_000])
def test_deeply_nested_json_is_a_bad_reply(stub, tmp_path, depth):
    stub.route("GET", "/api/connection", Reply(200, "[" * depth + "]" * depth))
    proc = run_bounded(tmp_path, "8status_raw", config=config(stub, read_timeout=10))
    assert_clean_failure(proc, 1, "is nested more than 100 levels deep")
    assert "internal error" not in proc.stderr


def test_ordinary_nesting_is_fine(stub):
    nested = {"a": [{"b": [[1, 2], {"c": None}]}]}
    stub.route("GET", "/api/version", Reply(200, nested))
    client = Client(stub.url, KEY)
    assert client.version() == nested
    client.close()


# -- redirects are errors, and the key stays home ---------------------------------------------------------------


@pytest.fixture
def elsewhere():
    """A second server a redirect points at; it records whether the key reached it."""
    with StubServer(idle_octoprint_routes()) as server:
        yield server


def redirect_to(target, status=302):
    return Reply(status, "", headers={"Location": target})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_jog_is_an_error_and_the_key_stays_home(stub, elsewhere, tmp_path, status):
    target = elsewhere.url.replace("http://", "http://user:s3cret@") + "/api/printer/printhead"
    stub.route("POST", "/api/printer/printhead", redirect_to(target, status))
    proc = run_bounded(tmp_path, "8jog", 1, 0, 0, config=config(stub, read_timeout=5))
    assert_clean_failure(
        proc,
        1,
        f"redirect (HTTP {status}) to http://***@127.0.0.1:{elsewhere.port}/api/printer/printhead: not followed",
    )
    assert "jogged" not in proc.stdout
    assert "s3cret" not in proc.stderr
    assert elsewhere.requests == []  # so no X-Api-Key header reached it either


def test_a_redirected_read_is_not_followed_by_the_client(stub, elsewhere):
    stub.route("GET", "/api/version", redirect_to(elsewhere.url + "/api/version"))
    client = Client(stub.url, KEY)
    with pytest.raises(PrinterError, match="redirect .HTTP 302. to http://127.0.0.1") as info:
        client.version()
    assert info.value.status == 302
    assert elsewhere.requests == []
    client.close()


def test_network_failures_are_named_by_the_type_of_their_cause_not_its_text():
    """requests wraps urllib3 wraps the OS error; the words come from the innermost type, so a message worded
    otherwise (another urllib3 release, another locale) still reads the same."""
    import errno
    import http.client

    import requests
    import urllib3.exceptions as u3

    from octopanel.printers.octoprint.http_body import short_reason

    def wrapped(inner):
        conn = u3.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Verbindung verweigert")
        conn.__cause__ = inner
        return requests.ConnectionError(u3.MaxRetryError(None, "/api/version", conn))

    assert (
        short_reason(wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "Verbindung verweigert")))
        == "connection refused"
    )
    assert short_reason(wrapped(OSError(errno.EHOSTUNREACH, "Keine Route zum Zielrechner"))) == "no route to host"
    closed = requests.ConnectionError(u3.ProtocolError("Verbindung getrennt", http.client.RemoteDisconnected("x")))
    assert short_reason(closed) == "the server closed the connection"
    assert (
        short_reason(requests.ConnectionError(u3.ProtocolError("x", ConnectionResetError(104, "x"))))
        == "the connection was reset"
    )
    assert (
        short_reason(requests.ConnectionError("Connection refused, says the text only"))
        == "no connection could be made"
    )  # text alone decides nothing


def test_verbose_output_escapes_what_the_server_sends_in_its_status_line_and_headers(tmp_path):
    """-vv prints the server's reason phrase and headers: an escape sequence there must not reach the terminal
    (clear the screen, retitle the window, hide what came before); it is shown as \\x1b."""

    def write(wfile, closing):
        body = b'{"api": "0.1", "server": "1.11.8", "text": "OctoPrint 1.11.8"}'
        wfile.write(
            b"HTTP/1.1 200 OK\x1b]0;owned\x07\r\nContent-Type: application/json\r\nX-Evil: \x1b[2Jgone\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wfile.flush()

    routes = idle_octoprint_routes()
    routes[("GET", "/api/version")] = Reply(raw=write)
    with StubServer(routes) as server:
        out = run_bounded(tmp_path, "8apiver", "-vv", config=config(server))
    assert out.returncode == 0, out.stderr
    assert "<< X-Evil: \\x1b[2Jgone" in out.stderr and "OK\\x1b]0;owned\\x07" in out.stderr, out.stderr
    assert "\x1b" not in out.stderr + out.stdout and "\x07" not in out.stderr
