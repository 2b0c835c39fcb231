"""Secrets: the API key never shows in what octopanel prints or logs. Named test_zz_… so that it runs last.

What is scanned, for the session OctoPrint's API key (and admin key) and for a distinctive key of our own:
1. Every file under this session's pytest base directory (tmp_path_factory.getbasetemp()): daemon logs,
   recordings, outputs other tests wrote there. Files whose job is to hold a key (config files, key files,
   OctoPrint's own basedirs) are left out, and listed in the failure message if they are the only hits.
2. The output pytest captured for every test of this session so far (stdout, stderr and log sections of
   each report, and failure texts), read from the terminal reporter's statistics.
3. Output produced here at the highest verbosity: every 8xxx command with -vv against the session
   OctoPrint; a few against a stub that rejects the key and against a closed port; `octopanel run
   --dry-run -vv` and `octopanel run -vvv` (real client: request and response headers printed) on a
   short recording. Each of these must print something, or the scan would prove nothing.

Not covered: output a test captured into a variable and neither printed nor wrote to a file (subprocess
results, mostly); OctoPrint's own logs (not octopanel's output); runs with `-s` or `-p no:terminal`, where
pytest keeps no captured output to read.
"""

import os
import re
import struct
import subprocess
import sys
import time

import pytest
from conftest import BIN, LEAKY_PREFIXES
from evdev import ecodes as e
from stubserver import Reply, StubServer

from octopanel.actions import build_registry

DISTINCT_KEY = "zzSECRET-octopanel-4e1f9b27c6a8d305"
KEY_STORE_NAMES = {"config.yaml", "octocmd.conf", ".octocmd.conf", "users.yaml", "keys.yaml", "octoprint-api-key"}
KEY_STORE_PATTERN = re.compile(r"(api[_-]?key|apikey|secret|token|credential|key\.txt$|^key$)", re.I)
MAX_SCAN_BYTES = 50 * 1024 * 1024
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
]


def secrets(octoprint):
    return [key for key in (octoprint.api_key, octoprint.admin_key, DISTINCT_KEY) if key]


def leaks(text, keys):
    """The keys found in text, whole or as a 12-character piece (a key cut by a line break still leaks)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = []
    for key in keys:
        pieces = {key} | {key[i : i + 12] for i in range(0, max(1, len(key) - 11), 6)}
        if any(piece in text for piece in pieces):
            found.append(key[:4] + "…")
    return found


def is_key_store(path, data):
    """A file whose purpose is to hold a key: octopanel's or 8control's config, a key file, OctoPrint's data."""
    if path.name in KEY_STORE_NAMES or KEY_STORE_PATTERN.search(path.name):
        return True
    if path.suffix in (".yaml", ".yml", ".conf", ".json") and re.search(rb"api_?key|OctoAPI_KEY", data, re.I):
        return True  # a config file with a key setting, e.g. what `octopanel login` writes
    return any((parent / "data" / "appkeys").is_dir() for parent in path.parents)


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


def test_files_written_by_the_suite_hold_no_key(tmp_path_factory, octoprint):
    base = tmp_path_factory.getbasetemp()
    keys = secrets(octoprint)
    bad, stores, scanned = [], [], 0
    for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            if path.stat().st_size > MAX_SCAN_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue  # a socket or FIFO left behind, or a file removed meanwhile
        scanned += 1
        found = leaks(data, keys)
        if found:
            (stores if is_key_store(path, data) else bad).append(f"{path.relative_to(base)} ({', '.join(found)})")
    assert bad == [], f"the API key is in files the suite wrote: {bad}; (key stores, allowed: {stores})"


def test_output_captured_for_the_whole_session_holds_no_key(request, octoprint):
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    keys = secrets(octoprint)
    bad, texts = [], 0
    for reports in reporter.stats.values() if reporter is not None else ():
        for report in reports:
            parts = [content for _title, content in getattr(report, "sections", ())]
            parts.append(getattr(report, "longreprtext", "") or "")
            for part in parts:
                texts += 1
                if leaks(part, keys):
                    bad.append(getattr(report, "nodeid", "?"))
    assert bad == [], f"the API key is in the captured output of: {sorted(set(bad))}"
    print(f"scanned {texts} captured texts")
    assert texts > 0 or reporter is None
