"""Secrets: the API key never shows in what octopanel prints or logs (the whole-session scans: secretscan.py).

What is scanned, for the session OctoPrint's API key (and admin key) and for a distinctive key of our own:
1. At the session's end, whatever order the tests ran in (tests/conftest.py, pytest_sessionfinish): every
   file under the session's pytest base directory (daemon logs, recordings, guest logs of the kernel tests)
   and the output pytest captured for every test (stdout, stderr, log sections, failure texts). Files
   whose job is to hold a key (config and key files, OctoPrint's basedirs) are allowed. A leak fails the
   session (exit 1) with the list. The scan itself is tested here.
2. Output produced here at the highest verbosity: every 8xxx command with -vv against the session
   OctoPrint; a few against a stub that rejects the key and against a closed port; `octopanel run
   --dry-run -vv` and `octopanel run -vvv` (real client: request and response headers printed) on a
   short recording. Each of these must print something, or the scan would prove nothing.

Not covered: output a test captured into a variable and neither printed nor wrote to a file (subprocess
results, mostly); OctoPrint's own logs (not octopanel's output); runs with `-s` or `-p no:terminal`, where
pytest keeps no captured output to read.
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import BIN, LEAKY_PREFIXES
from evdev import ecodes as e
from secretscan import DISTINCT_KEY, leaks, scan_session, secrets
from stubserver import Reply, StubServer

from octopanel.actions import build_registry

GCODE = "G90\nG1 X10 F3000\nG1 X20 F3000\n"

# argv for every 8xxx command, in the order they run (state-changing ones last).
COMMANDS = [
    ("checkcfg", []),
    ("apiver", []),
    ("status_raw", []),
    ("statusraw", []),
    ("status", []),
    ("getjob", []),
    ("ListCmds", []),
    ("g", ["M117", "zz"]),
    ("gcode", ["M105"]),
    ("gmulti", ["M117", "M105"]),
    ("g0", ["X1"]),
    ("g1", ["X2"]),
    ("msg", ["hello"]),
    ("beep", []),
    ("click", []),
    ("getpos", []),
    ("stepon", []),
    ("stepoff", []),
    ("sleep", ["0"]),
    ("sleepms", ["0"]),
    ("fan", ["on"]),
    ("fan2", ["off"]),
    ("servo", ["0", "90"]),
    ("home", []),
    ("jog", ["x=1"]),
    ("ex", ["1", "--force"]),
    ("extrude", ["1", "--force"]),
    ("fex", ["1", "--force"]),
    ("eject", ["--force"]),
    ("speed", ["100"]),
    ("feed", ["100"]),
    ("settemp", ["0"]),
    ("setbed", ["0"]),
    ("settempr", ["0"]),
    ("setbedr", ["0"]),
    ("gettemp_raw", []),
    ("gettemp", []),
    ("getbed_raw", []),
    ("getbed", []),
    ("alarm", ["t", "0"]),
    ("alarmq", ["t", "0"]),
    ("waitend", ["--timeout", "1"]),
    ("upload", ["{file}"]),
    ("ls_raw", []),
    ("ls", []),
    ("ll", ["zz.gcode"]),
    ("fselect", ["zz.gcode"]),
    ("start", []),
    ("print", []),
    ("pause_raw", []),
    ("pause", []),
    ("resume", []),
    ("restart", []),
    ("cancel", []),
    ("xcancel", ["--timeout", "5"]),
    ("runfile", ["{file}"]),
    ("connect", []),
    ("reset", []),
    ("run", ["reset"]),
    ("on", []),
    ("off", []),
    ("disconnect", []),
    ("reconnect", []),
    ("estop", []),  # last: M112 halts the Virtual Printer (the next test's reset reconnects it)
]


def clean_env(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES) and k != "NOTIFY_SOCKET"}
    env.update(HOME=str(home), **extra)
    return env


def run(argv, env, timeout=60):
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.stdout + proc.stderr


def test_every_8xxx_command_at_full_verbosity_prints_no_key(printer, tmp_path):
    registry = build_registry()
    assert sorted(name for name, _args in COMMANDS) == sorted(registry.command_names()), (
        "add the new 8xxx command to COMMANDS"
    )
    gcode = tmp_path / "zz.gcode"
    gcode.write_text(GCODE)
    env = clean_env(tmp_path, OCTOPRINT_URL=printer.url, OCTOPRINT_API_KEY=printer.api_key)
    keys = secrets(printer)
    silent, bad = [], []
    for name, args in COMMANDS:
        args = [a.replace("{file}", str(gcode)) for a in args]
        output = run([str(BIN / f"8{name}"), "-vv", *args], env)
        if not output.strip():
            silent.append(name)
        if leaks(output, keys):
            bad.append((name, output[-300:]))
    assert bad == [], bad
    assert silent == [], f"these printed nothing, so the scan proves nothing for them: {silent}"


def test_rejected_and_unreachable_at_full_verbosity_print_no_key(tmp_path):
    with StubServer({}) as stub:
        stub.routes = {
            (method, path): Reply(403, {"error": "Forbidden"})
            for method in ("GET", "POST")
            for path in (
                "/api/version",
                "/api/printer",
                "/api/job",
                "/api/printer/tool",
                "/api/printer/printhead",
                "/api/printer/command",
                "/api/printerprofiles",
            )
        }
        outputs = []
        for env in (
            clean_env(tmp_path, OCTOPRINT_URL=stub.url, OCTOPRINT_API_KEY=DISTINCT_KEY),
            clean_env(tmp_path, OCTOPRINT_URL="http://127.0.0.1:9", OCTOPRINT_API_KEY=DISTINCT_KEY),
        ):
            for name, args in (("apiver", []), ("jog", ["x=1"]), ("msg", ["hi"]), ("gettemp", []), ("status", [])):
                outputs.append(run([str(BIN / f"8{name}"), "-vv", *args], env))
        outputs.append(
            run(
                [str(BIN / "octopanel"), "--url", stub.url, "--api-key", DISTINCT_KEY, "-vv", "apiver"],
                clean_env(tmp_path),
            )
        )
        assert stub.requests and all(r.headers.get("X-Api-Key") == DISTINCT_KEY for r in stub.requests)
    assert all(o.strip() for o in outputs)
    assert [o for o in outputs if leaks(o, [DISTINCT_KEY])] == []


def test_an_error_page_echoing_the_key_is_redacted(tmp_path):
    """A proxy's error page may echo the request headers: octopanel prints OctoPrint's error text, so it must
    redact the key there too (Client.redact covers the URL and headers it prints, not error messages)."""
    echo = lambda request: Reply(400, {"error": f"bad request, headers were: {request.headers}"})  # noqa: E731
    with StubServer({("GET", "/api/version"): echo, ("POST", "/api/printer/command"): echo}) as stub:
        env = clean_env(tmp_path, OCTOPRINT_URL=stub.url, OCTOPRINT_API_KEY=DISTINCT_KEY)
        outputs = [run([str(BIN / "8apiver")], env), run([str(BIN / "8msg"), "hi"], env)]
    assert all("bad request" in o for o in outputs), outputs
    leaked = [o.replace(DISTINCT_KEY, "<THE KEY>") for o in outputs if leaks(o, [DISTINCT_KEY])]
    assert leaked == [], leaked  # the key itself kept out of this message, or the session scan would flag it


def recording(path):
    """KEY_KP5 pressed and released: one `msg` through the daemon."""

    def rec(t, type_, code, value):
        return struct.pack("llHHi", int(t), int((t % 1) * 1e6), type_, code, value)

    t = 1000.0
    path.write_bytes(
        rec(t, e.EV_KEY, e.KEY_KP5, 1)
        + rec(t, e.EV_SYN, e.SYN_REPORT, 0)
        + rec(t + 0.05, e.EV_KEY, e.KEY_KP5, 0)
        + rec(t + 0.05, e.EV_SYN, e.SYN_REPORT, 0)
    )
    return path


@pytest.mark.parametrize("mode", ["--dry-run -vv", "-vvv"])
def test_the_daemon_at_full_verbosity_prints_no_key(printer, tmp_path, mode):
    keymap = tmp_path / "keymap.yaml"
    keymap.write_text("feedback: {beep: false, message: false, leds: 'off'}\nkeys:\n  KEY_KP5: 'msg secrets'\n")
    env = clean_env(tmp_path, OCTOPRINT_URL=printer.url, OCTOPRINT_API_KEY=printer.api_key)
    started = time.monotonic()
    output = run(
        [
            sys.executable,
            "-m",
            "octopanel",
            "run",
            *mode.split(),
            "--replay",
            str(recording(tmp_path / "rec.bin")),
            "--keymap",
            str(keymap),
            "--no-control",
        ],
        env,
        timeout=30,
    )
    assert time.monotonic() - started < 30
    assert "M117 secrets" in output and "POST" in output, output[-500:]
    if mode == "-vvv":
        assert ">> X-Api-Key: ***" in output, output[-800:]  # headers are printed, and redacted
    assert leaks(output, secrets(printer)) == [], output[-500:]


# -- last: scan what the whole session left behind (this file's own runs included) ---------------------


def test_the_session_scan_finds_a_key_in_a_file_and_in_captured_output():
    """The scan run at the session's end (tests/conftest.py) finds a key where it should, and only there."""
    from types import SimpleNamespace

    # Outside the session's base directory, which the real scan at the end reads.
    tmp_path = Path(tempfile.mkdtemp(prefix="octopanel-scan-"))
    (tmp_path / "daemon.log").write_text(f"header X-Api-Key: {DISTINCT_KEY[:20]}\n")
    (tmp_path / "config.yaml").write_text(f"api_key: {DISTINCT_KEY}\n")  # a key store: allowed
    (tmp_path / "clean.log").write_text("nothing to see\n")
    report = SimpleNamespace(nodeid="tests/x.py::test_leaky", sections=[("Captured stderr", DISTINCT_KEY)])
    clean = SimpleNamespace(nodeid="tests/x.py::test_clean", sections=[("Captured stdout", "ok")])
    problems = scan_session(tmp_path, {"passed": [report, clean]}, [DISTINCT_KEY])
    assert problems == [
        "the API key is in a file the suite wrote: daemon.log (zzSE…)",
        "the API key is in the captured output of tests/x.py::test_leaky",
        "(key stores, allowed: ['config.yaml (zzSE…)'])",
    ]
    assert scan_session(tmp_path / "nothing", {"passed": [clean]}, [DISTINCT_KEY]) == []
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("leaky", [True, False], ids=["leaky", "clean"])
def test_a_session_whose_output_holds_a_key_fails_whatever_ran_last(tmp_path, leaky):
    """The session-end hook itself, in a pytest session of its own: a test printing the key fails the session
    (exit 1) even though it passed and ran last; without the print the session passes."""
    here = Path(__file__).parent
    for name in ("conftest.py", "secretscan.py", "klipperfix.py"):  # conftest.py imports the other two
        (tmp_path / name).write_text((here / name).read_text())
    line = "print(DISTINCT_KEY)" if leaky else "print('no key here')"
    (tmp_path / "test_last.py").write_text(f"from secretscan import DISTINCT_KEY\n\n\ndef test_z():\n    {line}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if leaky:
        assert proc.returncode == 1 and "secrets leaked" in proc.stdout, proc.stdout
        assert "the API key is in the captured output of test_last.py::test_z" in proc.stdout
        assert "1 passed" in proc.stdout
    else:
        assert proc.returncode == 0 and "secrets leaked" not in proc.stdout, proc.stdout
