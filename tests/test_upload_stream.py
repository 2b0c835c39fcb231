"""8upload streams the file from disk (flat memory for 300 MB) and refuses what is not a regular file (issue 10 §5)."""

import os
import subprocess
import sys

import pytest
from cmdcheck import ok
from stubserver import Reply, StubServer, idle_octoprint_routes
from test_hostile_server import config, run_bounded
from test_stub_faults import BIN, assert_clean_failure

BIG_BYTES = 300 * 1024 * 1024
PEAK_RSS_LIMIT_KB = 50 * 1024


def stored(name):
    return Reply(201, {"done": True, "files": {"local": {"name": name, "origin": "local"}}}, discard_body=True)


@pytest.fixture
def stub():
    routes = idle_octoprint_routes()
    routes[("POST", "/api/files/local")] = stored("big.gcode")
    with StubServer(routes) as server:
        yield server


def cli_env(tmp_path, stub, read_timeout=30):
    path = tmp_path / "config.yaml"
    path.write_text(config(stub, read_timeout))
    path.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPRINT_", "OCTOPANEL_", "XDG_CONFIG_"))}
    env.update(HOME=str(tmp_path), OCTOPANEL_CONFIG=str(path))
    return env


# Run by a fresh, small interpreter: a child's ru_maxrss starts from its parent's resident set at fork
# (Linux carries the high-water mark across exec), and the parent here is pytest, at 40-50 MB.
MEASURER = """import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_measured(argv, env, out_path):
    """Run argv to its end; (exit code, its own peak resident set in KiB). stdout and stderr go to out_path."""
    result = out_path.with_suffix(".rss")
    with open(out_path, "wb") as out:
        subprocess.run(
            [sys.executable, "-c", MEASURER, str(result), *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=True,
        )
    code, peak_kb = map(int, result.read_text().split())
    return code, peak_kb


def test_a_300_mb_upload_streams_in_little_memory(stub, tmp_path):
    big = tmp_path / "big.gcode"
    with open(big, "wb") as handle:
        handle.truncate(BIG_BYTES)  # sparse: nothing to write, and reading it costs no disk
    code, peak_kb = run_measured([str(BIN / "8upload"), str(big)], cli_env(tmp_path, stub), tmp_path / "out")
    output = (tmp_path / "out").read_text()
    assert code == 0, output
    assert output == f"uploaded big.gcode ({BIG_BYTES} bytes)\n"
    (upload,) = stub.received("POST", "/api/files/local")
    assert upload.size == int(upload.headers["Content-Length"]) > BIG_BYTES
    print(f"8upload of {BIG_BYTES >> 20} MB: peak RSS {peak_kb >> 10} MB")
    assert peak_kb < PEAK_RSS_LIMIT_KB, f"peak RSS {peak_kb >> 10} MB"


def test_stdin_is_streamed_too(stub, tmp_path):
    data = bytes(range(256)) * 4096  # 1 MB, every byte value
    proc = subprocess.run(
        [str(BIN / "8upload"), "-", "piped.gcode"],
        input=data,
        env=cli_env(tmp_path, stub),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (upload,) = stub.received("POST", "/api/files/local")
    assert upload.size == int(upload.headers["Content-Length"]) > len(data)


@pytest.mark.parametrize("command", ["8upload", "8runfile"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
def test_what_is_not_a_regular_file_is_refused_before_sending(stub, tmp_path, kind, command):
    if kind == "fifo":
        target = tmp_path / "pipe.gcode"
        os.mkfifo(target)  # nobody writes to it: the old code waited for a writer for ever
    elif kind == "directory":
        target = tmp_path / "folder.gcode"
        target.mkdir()
    else:
        target = kind
    args = (target, "x.gcode") if command == "8upload" else (target,)
    proc = run_bounded(tmp_path, command, *args, config=config(stub))
    assert_clean_failure(proc, 2, f"cannot upload {target}: it is", "nothing sent")
    assert stub.requests == []  # not even 8runfile's state check


def test_a_streamed_upload_arrives_intact_on_octoprint(run8, printer, tmp_path):
    data = bytes(range(256)) * 2048 + b"\r\n--not-a-boundary--\r\n"  # 512 KB, every byte value
    source = tmp_path / "binary-ish.gcode"
    source.write_bytes(data)
    ok(run8("8upload", source))
    response = printer.request("GET", "/downloads/files/local/binary-ish.gcode")
    assert response.content == data
