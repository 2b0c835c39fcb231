"""The control socket under load and abuse, against the real daemon and a real OctoPrint (serial.log)."""

import grp
import json
import os
import socket
import stat
import threading
import time

import pytest
from daemonproc import DaemonProc

CLIENTS = 10
LINES_PER_CLIENT = 3


@pytest.fixture
def daemon(tmp_path, printer):
    procs = []

    def start(*args):
        proc = DaemonProc(tmp_path, args, printer=printer)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


def read_replies(sock, count):
    reader = sock.makefile("rb")
    return [json.loads(reader.readline()) for _ in range(count)]


def test_concurrent_clients_each_get_their_replies_in_order(daemon, printer):
    d = daemon()
    mark = printer.mark()
    replies, errors = {}, []

    def client(n):
        try:
            with d.connect() as sock:
                lines = [f"msg client {n} line {i}" for i in range(LINES_PER_CLIENT)]
                sock.sendall("".join(line + "\n" for line in lines).encode())  # pipelined on one connection
                replies[n] = read_replies(sock, LINES_PER_CLIENT)
        except Exception as exc:  # reported below, with the daemon's log
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, (errors, d.output())
    assert sorted(replies) == list(range(CLIENTS))
    for n, got in replies.items():  # each client's replies, in the order of its lines
        assert [(r["ok"], r["action"], r["message"]) for r in got] == [
            (True, "msg", f"M117 client {n} line {i} sent") for i in range(LINES_PER_CLIENT)
        ], got
    expected = {f"M117 client {n} line {i}" for n in range(CLIENTS) for i in range(LINES_PER_CLIENT)}
    sent = printer.wait_sent(mark, lambda sent: expected <= set(sent), timeout=15)
    for n in range(CLIENTS):  # one client's lines reach the printer in the order it sent them
        mine = [line for line in sent if line.startswith(f"M117 client {n} ")]
        assert mine == [f"M117 client {n} line {i}" for i in range(LINES_PER_CLIENT)]
    assert d.close() == 0, d.output()


def test_garbage_gets_error_replies_and_the_daemon_keeps_serving(daemon, printer):
    d = daemon()
    with d.connect() as sock:
        # Blank and comment lines are skipped without a reply, so each reply below answers one real line.
        sock.sendall(b'\xff\xfe\x00binary\n{\n{"argv": []}\n\n\n   \n# a comment\njgo z=1\nmsg after garbage\n')
        bad_utf8, bad_json, empty_argv, typo, good = read_replies(sock, 5)
    assert bad_utf8 == {"ok": False, "error": "the line is not UTF-8 text", "exit": 2}
    assert bad_json["ok"] is False and bad_json["exit"] == 2 and bad_json["error"].startswith("malformed request")
    assert empty_argv["ok"] is False and "non-empty list" in empty_argv["error"]
    assert typo == {"ok": False, "error": "unknown action 'jgo' (did you mean 'jog'?)", "exit": 2}
    assert good["ok"] is True

    with d.connect() as sock:  # an overlong line that does end
        sock.sendall(b"msg " + b"x" * 5000 + b"\n")
        (reply,) = read_replies(sock, 1)
    assert reply == {"ok": False, "error": "line longer than 4096 bytes", "exit": 2}

    with d.connect() as sock:  # a stream that never ends a line: answered, then cut off
        try:
            sock.sendall(b"y" * 200_000)
        except OSError:
            pass  # the daemon may close before everything was written
        reply = sock.makefile("rb").readline()
        assert json.loads(reply)["error"] == "line longer than 4096 bytes"
        try:
            assert sock.recv(1) == b""  # closed by the daemon...
        except ConnectionResetError:
            pass  # ...with our unread bytes still queued on its side

    mark = printer.mark()
    assert d.ask("msg still serving")["ok"]
    printer.wait_sent(mark, ["M117 still serving"])
    assert d.proc.poll() is None
    assert "Traceback" not in d.output()
    assert d.close() == 0, d.output()


def test_half_open_and_idle_clients_never_block_others(daemon, printer):
    d = daemon()
    crowd = [d.connect() for _ in range(40)]  # idle clients hold nothing up
    silent = d.connect()  # connects and sends nothing
    half = d.connect()
    half.sendall(b"msg hal")  # half a line, then nothing for a while
    try:
        mark = printer.mark()
        for n in range(5):
            started = time.monotonic()
            assert d.ask(f"msg meanwhile {n}", timeout=5)["ok"]
            assert time.monotonic() - started < 2
        printer.wait_sent(mark, [f"M117 meanwhile {n}" for n in range(5)])
        half.sendall(b"f\n")  # the daemon kept the half line for this client
        assert json.loads(half.makefile("rb").readline())["ok"] is True
        printer.wait_sent(mark, ["M117 half"])
    finally:
        for sock in (*crowd, silent, half):
            sock.close()
    assert d.ask("msg last")["ok"]
    assert d.close() == 0, d.output()


def test_a_client_that_half_closes_after_its_lines_still_gets_every_reply(daemon, printer):
    """What `echo pause | socat - UNIX-CONNECT:...` and `nc -U -N` do: send, shut down writing, then read."""
    d = daemon()
    mark = printer.mark()
    with d.connect() as sock:
        sock.sendall(b"msg one\njgo z=1\nmsg two\n")
        sock.shutdown(socket.SHUT_WR)
        replies = [json.loads(line) for line in sock.makefile("rb")]  # until the daemon closes
    # A parse error is answered at once, before the queued actions finish (dispatch.line's contract).
    assert [r for r in replies if not r["ok"]] == [
        {"ok": False, "error": "unknown action 'jgo' (did you mean 'jog'?)", "exit": 2}
    ]
    assert [r["message"] for r in replies if r["ok"]] == ["M117 one sent", "M117 two sent"], replies
    printer.wait_sent(mark, ["M117 one", "M117 two"])
    assert d.close() == 0, d.output()


def test_socket_is_0660_and_belongs_to_the_control_group(daemon):
    group = other_group()
    d = daemon("--control-group", group.gr_name) if group else daemon()
    st = os.stat(d.control)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    if group is None:
        pytest.skip("no group other than our own to hand the socket to (the mode was checked)")
    assert st.st_gid == group.gr_gid
    assert "cannot give" not in d.output()
    assert d.close() == 0


def test_unknown_control_group_is_reported_and_the_socket_stays_private(daemon):
    d = daemon("--control-group", "no-such-group-octopanel")
    assert stat.S_IMODE(os.stat(d.control).st_mode) == 0o660
    assert os.stat(d.control).st_gid == os.getegid()
    assert "cannot give" in d.output() and "no-such-group-octopanel" in d.output()
    assert d.ask("jgo z=1")["exit"] == 2  # still answering
    assert d.close() == 0


def other_group():
    """A group we may give a file to: any group when root, else one of our supplementary groups."""
    candidates = [g for g in grp.getgrall() if g.gr_gid != os.getegid()]
    if os.geteuid() != 0:
        candidates = [g for g in candidates if g.gr_gid in os.getgroups()]
    return candidates[0] if candidates else None


def test_pause_from_the_socket_during_a_real_print_is_stateless(daemon, printer):
    printer.print_file()
    d = daemon()
    first = d.ask("pause")
    assert first["ok"] and first["sent"] is True, first
    printer.wait_state("paused", timeout=15)
    second = d.ask("pause")
    assert second == {"ok": True, "action": "pause", "sent": False, "message": "already paused: nothing sent"}
    assert "paused" in printer.flags()
    assert d.close() == 0, d.output()


def test_the_socket_appears_only_once_it_listens_and_replaces_a_stale_one(tmp_path):
    """The path is bound under a temporary name and renamed once listening, so a client that sees it never
    gets 'connection refused' (the daemon used to bind it in place, then chmod, then listen)."""
    import selectors

    from octopanel.daemon.control import ControlServer

    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # left behind by a daemon that died: bound, nobody listening
    stale.close()
    (tmp_path / "keep").mkdir()
    os.link(path, tmp_path / "keep" / "stale.sock")  # keeps its inode number from being reused by the new one
    seen = []

    def watch():  # look for the path as fast as we can; connect the moment it is there
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not seen:
            try:
                fresh = os.stat(path).st_ino != stale_ino
            except FileNotFoundError:  # between removing the stale socket and linking the new one
                continue
            if fresh:
                with socket.socket(socket.AF_UNIX) as sock:
                    try:
                        sock.connect(str(path))
                        seen.append("connected")
                    except ConnectionRefusedError:
                        seen.append("refused")

    stale_ino = os.stat(path).st_ino
    watcher = threading.Thread(target=watch)
    watcher.start()
    with selectors.DefaultSelector() as selector:
        server = ControlServer(path, on_line=None, selector=selector).open()
        watcher.join()
        assert seen == ["connected"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert sorted(p.name for p in tmp_path.iterdir()) == ["control.sock", "keep"]  # no temporary name left
        server.close()
    assert not path.exists()


def test_a_path_that_is_not_a_socket_is_left_alone(tmp_path):
    import selectors

    from octopanel.daemon.control import ControlServer
    from octopanel.errors import UsageError

    path = tmp_path / "control.sock"
    path.write_text("precious")
    with selectors.DefaultSelector() as selector, pytest.raises(UsageError, match="exists and is not a socket"):
        ControlServer(path, on_line=None, selector=selector).open()
    assert path.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["control.sock"]


def test_a_live_socket_is_never_replaced_and_only_our_own_is_unlinked(tmp_path):
    import selectors

    from octopanel.daemon.control import ControlServer
    from octopanel.errors import UsageError

    path = tmp_path / "control.sock"
    with selectors.DefaultSelector() as selector:
        first = ControlServer(path, on_line=None, selector=selector).open()
        ino = os.stat(path).st_ino
        with pytest.raises(UsageError, match="another octopanel daemon answers there"):
            ControlServer(path, on_line=None, selector=selector).open()
        assert os.stat(path).st_ino == ino and sorted(p.name for p in tmp_path.iterdir()) == ["control.sock"]
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))  # the first still listens
        os.unlink(path)
        with socket.socket(socket.AF_UNIX) as other:  # someone else's socket took the path since
            other.bind(str(path))
            first.close()
            assert path.exists()  # not ours: left alone


def test_a_full_house_of_idle_clients_makes_room_and_the_oldest_is_told_why(daemon, printer):
    from octopanel.daemon.control import MAX_CLIENTS

    d = daemon()
    idle = [d.connect() for _ in range(MAX_CLIENTS)]
    try:
        mark = printer.mark()
        assert d.ask("msg room for me")["ok"]
        printer.wait_sent(mark, ["M117 room for me"])
        evicted = json.loads(idle[0].makefile("rb").readline())
        assert evicted["ok"] is False and evicted["busy"] is True and "nothing sent" in evicted["error"]
        assert idle[0].recv(1) == b""  # and closed
    finally:
        for sock in idle:
            sock.close()
    assert d.close() == 0, d.output()


def test_a_json_request_is_read_by_its_content_not_its_first_characters(daemon, printer):
    """One parser (protocol.parse_request) decides the kind: a same_config query spaced otherwise is still one
    (before, only a line starting with '{"same_config"' was, and this one ran as a command and failed), and a
    JSON request with a second, unknown key is refused instead of run with the key ignored."""
    d = daemon()
    mark = printer.mark()
    with d.connect() as sock:
        sock.sendall(
            b'{ "same_config" : {"stamp": {"yaml": null, "octocmd": null, "url": null}} }\n'
            b'{"argv": ["msg", "two keys"], "then": "rm -rf"}\n'
            b'{"argv": ["msg", "one key"]}\n'
        )
        query, two_keys, good = read_replies(sock, 3)
    assert query["ok"] is True and query["same_config"] in (True, False), query
    assert two_keys == {
        "ok": False,
        "error": 'malformed request: expected {"argv": [...]} or {"same_config": {...}}',
        "exit": 2,
    }
    assert good["ok"] is True and good["message"] == "M117 one key sent"
    sent = printer.wait_sent(mark, lambda sent: "M117 one key" in sent, timeout=10)
    assert not [line for line in sent if "two keys" in line]


def test_a_client_whose_line_is_not_read_yet_is_never_the_one_closed_to_make_room(tmp_path):
    """At the client limit the oldest idle connection makes room for a new one. A client that has sent its line
    is not idle, even when the loop has not read the line yet: it must not be told "busy" for a line it sent
    (the loop reads such lines first). Driven by hand, so the unread line is certain."""
    import selectors

    from octopanel.daemon.control import MAX_CLIENTS, ControlServer

    lines = []
    path = tmp_path / "control.sock"
    with selectors.DefaultSelector() as selector:
        server = ControlServer(
            path, on_line=lambda kind, payload, reply, wanted: lines.append(payload), selector=selector
        ).open()
        clients = []
        try:
            for _ in range(MAX_CLIENTS):
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(str(path))
                clients.append(sock)
                assert server.accept() is not None
            clients[0].sendall(b"msg sent before the crowd\n")  # in its socket; the loop has not read it
            clients[0].settimeout(0.5)
            late = socket.socket(socket.AF_UNIX)
            late.connect(str(path))
            clients.append(late)
            assert server.accept() is not None
            assert lines == ["msg sent before the crowd"]  # read and handed on, not thrown away
            clients[1].settimeout(5)
            evicted = json.loads(clients[1].makefile("rb").readline())
            assert evicted["busy"] is True and "idle connection was closed" in evicted["error"]
            with pytest.raises(TimeoutError):  # no "busy" for the client whose line was taken
                clients[0].recv(1)
        finally:
            for sock in clients:
                sock.close()
            server.close()
