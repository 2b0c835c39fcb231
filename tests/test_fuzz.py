"""Fuzzing (hypothesis, derandomized so that every run tries the same inputs): keymaps, replay input,
control-socket lines, and out-of-range or mistyped CLI arguments.

- keymaps: generated documents (wrong types, huge numbers, unknown keys, deep nesting, anchors, tags),
  mutations of the shipped keymaps, and raw bytes (not UTF-8) either load or raise a ConfigError that
  starts with `<file>:<line>:` or `<file>:`; a few go through `octopanel check` (exit 2, no traceback).
- replay input: structured and random event records through the in-process daemon (ReplaySource at
  speed 0, GestureEngine, Dispatcher, Executor, dry-run client) end with exit 0, without an exception in
  any thread; a few random files go through `octopanel run --replay --dry-run`.
- control socket: random text, bytes, action-like and JSON lines on a running daemon each get at most one
  reply, an error with a message or a result, never an internal error; the daemon answers afterwards.
- CLI: every numeric parameter of every action, out of range or of the wrong type: exit 2, and the stub
  OctoPrint receives no request at all.

Code that could hang runs under a SIGALRM time limit (in-process) or a timeout and memory limit
(subprocesses), so that a bug shows up as a failure, not as a stuck suite.
"""

import contextlib
import io
import json
import math
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, LEAKY_PREFIXES
from daemonproc import clean_env, replay
from evdev import ecodes as e
from fakeprinter import FakeOctoPrint
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from inprocdaemon import InProcessDaemon
from stubserver import StubServer, idle_octoprint_routes

from octopanel import cli, values
from octopanel import settings as settings_mod
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.actions.parser import REQUIRED
from octopanel.actions.registry import resolve_limit
from octopanel.daemon.control import MAX_LINE
from octopanel.daemon.loop import Daemon
from octopanel.daemon.notify import Notifier
from octopanel.errors import ConfigError
from octopanel.input.devices import DeviceInfo, DeviceManager
from octopanel.input.devicespec import DeviceSpec
from octopanel.input.keynames import key_code
from octopanel.input.replay import ReplaySource
from octopanel.panel import keymap
from octopanel.printers.dryrun import DryRunClient

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = build_registry()
LIMITS = settings_mod.load(env={}).limits
SHIPPED = [ROOT / "etc" / "keymap.yaml", *sorted((ROOT / "etc" / "examples").glob("*.yaml"))]
FUZZ = settings(
    deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


class Hung(BaseException):
    """Raised by time_limit; a BaseException, so that no `except Exception` in the code under test eats it."""


@contextlib.contextmanager
def time_limit(seconds, what):
    """Interrupt the main thread after `seconds` (pure-Python loops only: C code runs to its end).

    The alarm repeats every 0.25 s: one that lands in a __del__ or a gc callback is swallowed there."""

    def expire(_signum, _frame):
        raise Hung(f"{what} took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.25)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def thread_exceptions():
    """Collect exceptions that escape any thread (they would only be printed as a traceback)."""
    caught = []
    previous = threading.excepthook
    threading.excepthook = lambda args: caught.append(f"{args.thread.name}: {args.exc_type.__name__}: {args.exc_value}")
    try:
        yield caught
    finally:
        threading.excepthook = previous


def limited(megabytes):
    """preexec_fn: cap a child's address space, so that a runaway allocation fails instead of swapping."""

    def apply():
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# -- keymaps -----------------------------------------------------------------------------------------

KEY_NAMES = ["KEY_KP8", "KEY_KP5", "KEY_A", "BTN_0", "KEY_VOLUMEUP", "KEY_CODE_700", "KEY_NOPE", "kp8", "", "+"]
WORDS = (
    list(keymap.TOP_KEYS + keymap.BINDING_KEYS + keymap.ROTARY_KEYS)
    + list(keymap.SETTINGS)
    + list(keymap.FEEDBACK)
    + ["values", "default", "name", "id", "grab", "path", "phys", "label", "step", "shift", "bogus", "Keys", "hold_S"]
)
LINES = [
    "jog z=1",
    "jog y={step}",
    "jog z={nope}",
    "ex 5",
    "ex 0",
    "home",
    "cancel",
    "off",
    "pause",
    "resume",
    "mode step next",
    "mode step 7",
    "mode nope next",
    "settemp 999",
    "settemp 200",
    "g M290 Z0.02",
    "msg {",
    "msg }{",
    "jog x=1e999",
    "alarm t 50",
    "eject -t 200",
    "fan on",
    "jgo",
    "",
    "'",
    "jog 'z=1",
]
HUGE_INTS = st.integers(min_value=10**308, max_value=10**330)  # beyond float: float(int) overflows
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HUGE_INTS,
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(LINES + KEY_NAMES + WORDS),
)


def nested(leaf):
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=12,
    )


BINDING = st.one_of(
    st.sampled_from(LINES),
    st.dictionaries(st.sampled_from(keymap.BINDING_KEYS + ("bogus",)), st.sampled_from(LINES) | SCALARS, max_size=4),
    st.lists(
        st.dictionaries(st.sampled_from(keymap.BINDING_KEYS), st.sampled_from(LINES) | SCALARS, max_size=3), max_size=3
    ),
    nested(SCALARS),
)
DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "keys": st.dictionaries(st.sampled_from(KEY_NAMES) | st.text(max_size=8), BINDING, max_size=5) | SCALARS,
        "settings": st.dictionaries(st.sampled_from(list(keymap.SETTINGS) + ["bogus"]), SCALARS, max_size=3),
        "modes": st.dictionaries(
            st.sampled_from(["step", "Step", "x-y", "speed"]),
            st.fixed_dictionaries({}, optional={"values": st.lists(SCALARS, max_size=4) | SCALARS, "default": SCALARS})
            | SCALARS,
            max_size=2,
        ),
        "devices": st.lists(
            st.dictionaries(st.sampled_from(["name", "id", "grab", "bogus", "path"]), SCALARS, max_size=3) | SCALARS,
            max_size=3,
        )
        | SCALARS,
        "rotary": st.dictionaries(
            st.sampled_from(["REL_DIAL", "REL_WHEEL", "KNOB", "REL_X"]),
            st.sampled_from(LINES)
            | st.dictionaries(st.sampled_from(keymap.ROTARY_KEYS), SCALARS | st.sampled_from(LINES)),
            max_size=2,
        ),
        "feedback": st.dictionaries(st.sampled_from(list(keymap.FEEDBACK) + ["bogus"]), SCALARS, max_size=3) | SCALARS,
    },
)
# An unknown top-level key stops loading at once, so only a few documents get one.
DOCUMENTS = st.one_of(DOCUMENTS, DOCUMENTS, DOCUMENTS, st.builds(lambda d, v: {**d, "bogus": v}, DOCUMENTS, SCALARS))
YAML_BITS = [
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "*b",
    "!!python/object:os.system ",
    "!!binary ",
    "!!set ",
    "!!float ",
    "? ",
    "|\n",
    ">\n",
    "#",
    "'",
    '"',
    "\t",
    "\n",
    "\n  ",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "<<: *a\n",
    "\x00",
    "\x85",
    "\ufeff",
    "9" * 400,
    "1" + "0" * 5000,
    "~",
    "0o17",
    ".nan",
    "-.inf",
]
MUTATIONS = st.lists(
    st.tuples(st.floats(0, 1), st.integers(0, 8), st.sampled_from(YAML_BITS) | st.text(max_size=4)),
    min_size=1,
    max_size=6,
)


def mutate(text, edits):
    for where, cut, insert in edits:
        i = int(where * len(text))
        text = text[:i] + insert + text[i + cut :]
    return text


def check_keymap(path, data):
    """Load `data` as a keymap: success, or a ConfigError naming the file (and a line inside it)."""
    path.write_bytes(data)
    with time_limit(5, f"loading keymap {data[:80]!r}"):
        try:
            km = keymap.load(path, REGISTRY, LIMITS)
        except ConfigError as exc:
            text = str(exc)
            assert text.startswith(f"{path}:"), text
            rest = text[len(f"{path}:") :]
            number = rest.split(":", 1)[0]
            if number.isdigit():
                assert 1 <= int(number) <= data.count(b"\n") + 1, text
            return None
    return km


@settings(FUZZ, max_examples=1000)
@given(doc=DOCUMENTS)
def test_generated_keymaps_load_or_fail_with_a_located_config_error(workdir, doc):
    check_keymap(workdir / "generated.yaml", yaml.safe_dump(doc, allow_unicode=True).encode())


@settings(FUZZ, max_examples=600)
@given(base=st.sampled_from(SHIPPED), edits=MUTATIONS)
def test_mutated_shipped_keymaps_load_or_fail_with_a_located_config_error(workdir, base, edits):
    check_keymap(workdir / "mutated.yaml", mutate(base.read_text(), edits).encode("utf-8", "surrogatepass"))


@settings(FUZZ, max_examples=300)
@given(
    data=st.binary(max_size=200)
    | st.builds(
        lambda b, junk, at: b[:at] + junk + b[at:],
        st.just(SHIPPED[0].read_bytes()),
        st.binary(min_size=1, max_size=8),
        st.integers(0, 2000),
    )
)
def test_raw_bytes_as_a_keymap_fail_with_a_config_error(workdir, data):
    check_keymap(workdir / "bytes.yaml", data)


def test_deep_nesting_and_small_anchors_are_handled(workdir):
    for text in (
        "keys: " + "[" * 5000 + "]" * 5000,
        "keys: " + "{a: " * 3000 + "1" + "}" * 3000,
        "x: &a [1, *a]\n",
        "keys: &k {KEY_KP8: *k}\n",
        "base: &b {press: 'jog z=1'}\nkeys:\n  KEY_KP8: {<<: *b, hold: home}\n",
    ):
        check_keymap(workdir / "deep.yaml", text.encode())


def test_an_integer_too_big_for_a_float_is_a_config_error(workdir):
    """`hold_s: 1000…0` (400 digits): float() raises OverflowError, which values.to_float does not catch."""
    check_keymap(workdir / "huge.yaml", b"settings:\n  hold_s: 1" + b"0" * 400 + b"\n")


def test_an_impossible_date_is_a_config_error(workdir):
    """YAML reads 2020-99-99 as a timestamp; datetime() raises ValueError while the document is built."""
    check_keymap(workdir / "date.yaml", b"keys:\n  KEY_KP8: 2020-99-99\n")


def test_an_integer_past_pythons_digit_limit_is_a_config_error(workdir):
    """5000 digits: PyYAML's int() raises ValueError (Python's 4300-digit limit), which lineyaml does not catch."""
    check_keymap(workdir / "digits.yaml", b"settings:\n  hold_s: 1" + b"0" * 5000 + b"\n")


BILLION_LAUGHS = (
    "keys:\n  KEY_KP8: ["
    + ", ".join(
        ["&a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
        + [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    )
    + "]\nsettings:\n  hold_s: ["
    + ",".join(["*a7"] * 10)
    + "]\n"
)


def run_check(tmp, text_or_bytes, timeout=10):
    path = tmp / "check.yaml"
    (path.write_bytes if isinstance(text_or_bytes, bytes) else path.write_text)(text_or_bytes)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "octopanel", "check", str(path)],
            env=clean_env(tmp),
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limited(600),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"octopanel check did not finish within {timeout} s")
    return path, proc, time.monotonic() - started


def test_a_billion_laughs_keymap_is_refused_quickly(tmp_path):
    """Aliases nest 10^8 'lol's into a setting: the error message must not try to print them all."""
    path, proc, elapsed = run_check(tmp_path, BILLION_LAUGHS)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr[-800:])
    assert proc.stderr.startswith(f"octopanel check: {path}:"), proc.stderr[:300]
    assert elapsed < 5


CHECK_SAMPLES = {
    "broken_yaml": "keys:\n  KEY_KP8: [jog z=1\n",
    "wrong_type": "keys: [1, 2]\n",
    "unknown_key": "settings:\n  hold_ss: 1\n",
    "tab": "keys:\n\tKEY_KP8: home\n",
    "tag": "keys: !!python/object/apply:os.system ['true']\n",
    "deep": "keys: " + "[" * 3000 + "]" * 3000 + "\n",
    "not_utf8": b"keys:\n  KEY_KP8: \xff\xfe jog\n",
    "huge_number": "settings:\n  stale_s: 1" + "0" * 400 + "\n",
    "nan": "settings:\n  stale_s: .nan\n",
    "bad_date": "keys:\n  KEY_KP8: 2020-99-99\n",
}


@pytest.mark.parametrize("name", sorted(CHECK_SAMPLES))
def test_octopanel_check_exits_2_with_a_located_message(tmp_path, name):
    path, proc, _elapsed = run_check(tmp_path, CHECK_SAMPLES[name])
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-800:])
    assert "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert proc.stderr.startswith(f"octopanel check: {path}:"), proc.stderr[:300]


# -- replay input ------------------------------------------------------------------------------------

REPLAY_KEYMAP = """\
feedback: {beep: true, message: true, leds: mode}
modes:
  step: {values: [0.1, 1, 10]}
settings: {repeat_delay_s: 0.3, repeat_s: 0.1}
keys:
  KEY_KP8: {press: "jog y={step}", repeat: "jog y={step}"}
  KEY_KP1: {press: "ex 5", hold: "ex -5"}
  KEY_KP0: {press: "fan on", double: "fan off"}
  KEY_KPDOT: {hold: cancel}
  KEY_LEFTSHIFT: {shift: fine}
  fine+KEY_KP8: "jog y=0.01"
  KEY_KPPLUS: "mode step next"
rotary:
  REL_DIAL: "jog z={step}"
  KNOB: {keys: [KEY_VOLUMEUP, KEY_VOLUMEDOWN], action: "jog x={step}"}
"""
KEY_CODES = [
    key_code(k)
    for k in (
        "KEY_KP8",
        "KEY_KP1",
        "KEY_KP0",
        "KEY_KPDOT",
        "KEY_LEFTSHIFT",
        "KEY_KPPLUS",
        "KEY_VOLUMEUP",
        "KEY_VOLUMEDOWN",
        "KEY_A",
    )
]
TYPES = [e.EV_SYN, e.EV_KEY, e.EV_REL, e.EV_MSC, e.EV_LED, e.EV_ABS]
RECORD = st.tuples(
    st.one_of(st.floats(0, 0.05), st.floats(0, 1.5), st.sampled_from([0.0, 0.35, 0.8, 5.0, 3600.0, -2.0])),
    st.sampled_from(TYPES) | st.integers(0, 0xFFFF),
    st.sampled_from(KEY_CODES + [e.SYN_REPORT, e.SYN_DROPPED, e.REL_DIAL, e.REL_WHEEL, e.REL_WHEEL_HI_RES])
    | st.integers(0, 0xFFFF),
    st.sampled_from([0, 1, 2, -1, 1, 0]) | st.integers(-(2**31), 2**31 - 1),
)
WILD_SECONDS = st.sampled_from([0, 1, 2**31 - 1, 2**62, -(2**62), 2**63 - 1])


def encode(records, size, start, wild):
    fmt = {24: "=qqHHi", 16: "=iiHHi"}[size]
    lo, hi = (-(2**63), 2**63 - 1) if size == 24 else (-(2**31), 2**31 - 1)
    out, t = [], start
    for index, (dt, type_, code, value) in enumerate(records):
        t += dt
        sec, usec = int(t), int((t - int(t)) * 1e6) % 1_000_000
        if wild is not None and index == len(records) // 2:
            sec = wild
        out.append(struct.pack(fmt, max(lo, min(hi, sec)), usec, type_, code, value))
    return b"".join(out)


REPLAY_INPUT = st.one_of(
    st.builds(
        encode,
        st.lists(RECORD, max_size=40),
        st.sampled_from([24, 16]),
        st.sampled_from([1000.0, 0.0, -(2.0**62)]),
        st.none() | WILD_SECONDS,
    ),
    st.binary(max_size=400),
    st.builds(
        lambda a, b: a + b,
        st.builds(encode, st.lists(RECORD, max_size=10), st.just(24), st.just(5.0), st.none()),
        st.binary(min_size=1, max_size=23),
    ),
)


@pytest.fixture(scope="module")
def replay_keymap(workdir):
    path = workdir / "replay-keymap.yaml"
    path.write_text(REPLAY_KEYMAP)
    return path, keymap.load(path, REGISTRY, LIMITS)


def replay_in_process(path, keymap_path, km):
    """`octopanel run --replay path --dry-run --speed 0`, in this process; returns (exit code, dry-run output)."""
    out = io.StringIO()
    ctx = Context(client=DryRunClient("idle", 210.0, out=out), settings=settings_mod.load(env={}), out=out, err=out)
    info = DeviceInfo(path=str(path), name="fuzz")

    def devices(_specs, on_change):
        return DeviceManager(
            [DeviceSpec(path=str(path))],
            lister=lambda: [info],
            opener=lambda p: ReplaySource(p, speed=0),
            on_change=on_change,
            watch_dir=None,
        )

    daemon = Daemon(km, keymap_path, REGISTRY, ctx, devices, Notifier(env={}), exit_at_end=True)
    return daemon.run(), out.getvalue()


@settings(FUZZ, max_examples=150, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # a hang is not shrunk
@given(data=REPLAY_INPUT)
def test_random_replay_input_never_crashes_the_daemon(workdir, replay_keymap, data):
    recording = workdir / "fuzz.bin"
    recording.write_bytes(data)
    with thread_exceptions() as caught, time_limit(3, f"replaying {len(data)} bytes"):
        code, _out = replay_in_process(recording, *replay_keymap)
    assert code == 0
    assert caught == []


def test_a_held_key_across_a_long_gap_does_not_flood(tmp_path, replay_keymap):
    """KEY_KP8 (repeat bound) goes down, and the recording's next event is 12 days later. The gesture
    engine must not compute those 10 million repeats in one go (it does: memory and time grow with the
    gap, and SIGTERM is not served meanwhile)."""
    recording = tmp_path / "gap.bin"
    recording.write_bytes(
        encode(
            [
                (0, e.EV_KEY, e.KEY_KP8, 1),
                (0, e.EV_SYN, e.SYN_REPORT, 0),
                (1e6, e.EV_KEY, e.KEY_KP8, 0),
                (0, e.EV_SYN, e.SYN_REPORT, 0),
            ],
            24,
            1000.0,
            None,
        )
    )
    with thread_exceptions() as caught, time_limit(2, "replaying one held key"):
        code, out = replay_in_process(recording, *replay_keymap)
    assert code == 0 and caught == []


def cli_replay(tmp, data, keymap_path, timeout=10):
    recording = tmp / "cli.bin"
    recording.write_bytes(data)
    try:
        return replay(recording, keymap_path, env=clean_env(tmp), timeout=timeout, preexec_fn=limited(2000))
    except subprocess.TimeoutExpired:
        pytest.fail(f"octopanel run --replay did not finish within {timeout} s")


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_through_octopanel_run_replay(tmp_path, replay_keymap, seed):
    rng = random.Random(seed)
    data = bytes(rng.getrandbits(8) for _ in range(rng.choice([50, 480, 3000])))
    proc = cli_replay(tmp_path, data, replay_keymap[0])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]


def test_wild_timestamps_through_octopanel_run_replay(tmp_path, replay_keymap):
    """Timestamps 2^62 s apart: the replay feeder thread must not die with a traceback (struct.error)."""
    data = b"".join(
        struct.pack("=qqHHi", sec, 0, type_, code, value)
        for sec, type_, code, value in [
            (-(2**62), e.EV_KEY, e.KEY_KP0, 1),
            (-(2**62), e.EV_SYN, 0, 0),
            (2**62, e.EV_KEY, e.KEY_KP0, 0),
            (2**62, e.EV_SYN, 0, 0),
        ]
    )
    proc = cli_replay(tmp_path, data, replay_keymap[0])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]


# -- the control socket -----------------------------------------------------------------------------

SOCKET_KEYMAP = """\
feedback: {beep: false, message: false, leds: "off"}
modes:
  step: {values: [1, 10]}
keys:
  KEY_KP8: "jog y={step}"
"""
PROBE = "mode step next"  # answered without the printer, whatever state the fuzz left it in


class SocketDaemon(InProcessDaemon):
    """The daemon in-process with a control socket, over FakeOctoPrint; sleeps in actions take no time."""

    def __init__(self, tmp):
        self.printer = FakeOctoPrint(state="idle", hotend=210)
        self.control = tmp / "fuzz.sock"
        super().__init__(
            tmp,
            SOCKET_KEYMAP,
            self.printer,
            control_path=self.control,
            keymap_name="socket-keymap.yaml",
            sleep=lambda s: None,
            out=io.StringIO(),
            err=io.StringIO(),
        )
        self.start()
        deadline = time.monotonic() + 5
        while not self.control.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def exchange(self, raw, timeout=5):
        """Send one line then PROBE (answered at once, after the line was read); wait until the worker is idle;
        return the replies other than PROBE's, and whether the connection stayed open."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.control))
            sock.sendall(raw + b"\n" + PROBE.encode() + b"\n")
            data = b""
            while b'"message":"mode step:' not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return self._parse(data), False  # closed (a line over MAX_LINE may do that)
                data += chunk
            deadline = time.monotonic() + timeout
            # `raw` may itself be a mode line answered like PROBE, before PROBE's own reply arrives:
            # wait for every reply owed (more are caught below, once the worker is idle).
            owed = expected_replies(raw) + 1
            while data.count(b"\n") < owed and time.monotonic() < deadline:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
            while self.daemon.executor.pending():  # the line's queued job, if any, has not answered yet
                assert time.monotonic() < deadline, f"{raw!r}: the worker is still busy after {timeout} s"
                time.sleep(0.001)
            sock.setblocking(False)
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except BlockingIOError:
                pass
        replies = self._parse(data)
        probe = max(i for i, r in enumerate(replies) if r.get("message", "").startswith("mode step:"))
        return replies[:probe] + replies[probe + 1 :], True

    @staticmethod
    def _parse(data):
        return [json.loads(line) for line in data.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def socket_daemon(workdir):
    running = SocketDaemon(workdir)
    yield running
    running.stop()


ACTION_NAMES = sorted({a.name for a in REGISTRY} | set(REGISTRY.command_names()))
ARG = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "-1",
            "5",
            "200",
            "999",
            "1e999",
            "nan",
            "abc",
            "--force",
            "-t",
            "x=1",
            "z=-1",
            "speed=0",
            "temp=300",
            "--",
            "'",
            '"',
            "t",
            "b",
            "d",
            "next",
            "prev",
            "on",
            "step",
            "nope",
            "{step}",
            "-q",
            "--timeout",
            "1e-9",
        ]
    ),
    st.text(max_size=8).filter(lambda s: "\n" not in s),
)
ACTION_LINE = st.builds(
    lambda name, args: " ".join([name, *args]), st.sampled_from(ACTION_NAMES), st.lists(ARG, max_size=4)
)
JSON_LINE = st.builds(
    json.dumps,
    st.one_of(
        st.fixed_dictionaries({"argv": st.lists(st.sampled_from(ACTION_NAMES) | ARG, max_size=4)}),
        st.fixed_dictionaries({"argv": nested(SCALARS)}),
        nested(SCALARS),
    ),
)
PANEL_LINE = st.builds(
    lambda name, value: f"mode {name} {value}".strip(), st.sampled_from(["step", "nope", "Step", ""]), ARG
)
SOCKET_LINE = st.one_of(
    ACTION_LINE.map(str.encode),
    ACTION_LINE.map(str.encode),
    PANEL_LINE.map(str.encode),
    JSON_LINE.map(str.encode),
    st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=60),
    st.sampled_from([b"#comment", b"   ", b"\x00", b"\xff\xfe", b"x" * 5000, b"\r", b"jog z=1\r", b"eject -t 200"]),
)


def expected_replies(raw):
    """How many replies the server owes a line: none for blank and comment lines, else one."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return 1
    return 0 if (not text or text.startswith("#")) and len(raw) <= MAX_LINE else 1


def check_reply(reply, raw):
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    if reply["ok"]:
        return
    if reply.get("local") is True and raw.lstrip().startswith(b"{"):
        return  # the fast CLI's 'run it yourself'
    error = reply.get("error")
    assert isinstance(error, str) and error.strip(), reply
    assert reply.get("exit") in (1, 2), reply
    assert not error.startswith("internal error"), f"{raw!r} → {reply}"


@settings(FUZZ, max_examples=600)
@given(raw=SOCKET_LINE.filter(lambda b: b"\n" not in b))
@example(raw=b"mode step").via("CI flake: its reply looks like the probe's")
@example(raw=PROBE.encode())
def test_random_control_lines_get_one_clear_reply_each(socket_daemon, raw):
    replies, probe_answered = socket_daemon.exchange(raw)
    assert socket_daemon.thread.is_alive()
    if not probe_answered:
        assert len(raw) > MAX_LINE, (raw, replies)
        replies2, probe_answered = socket_daemon.exchange(b"")
        assert probe_answered  # the daemon answers afterwards
    assert len(replies) == expected_replies(raw), (raw, replies)
    for reply in replies:
        check_reply(reply, raw)


def test_mode_with_an_unknown_name_or_value_is_a_usage_error(socket_daemon):
    """`mode step -5` and `mode nope next` on the socket: Panel.set_mode raises ValueError/KeyError, which
    the control server turns into 'internal error' with a logged traceback, instead of exit 2 with a hint."""
    for line in (b"mode step -5", b"mode nope next"):
        replies, _ = socket_daemon.exchange(line)
        assert len(replies) == 1
        assert replies[0].get("exit") == 2 and not replies[0]["error"].startswith("internal error"), replies


def test_a_line_that_waits_for_heat_does_not_hold_up_the_panel(tmp_path):
    """`eject -t 200` with a heater that never heats: eject waits with no timeout, on the panel's one worker.

    alarm and waitend are refused on the socket because they wait ('slow'); eject -t waits as long (forever,
    here) but is not marked slow, so every later line and key press, a pause included, waits behind it."""
    running = SocketDaemon(tmp_path)
    try:
        running.printer.heat_per_poll_c = 0.0
        running.printer.hotend = 21.0
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(running.control))
            sock.sendall(b"eject -t 200\n")
            time.sleep(0.2)
            started = time.monotonic()
            try:
                replies, _ = running.exchange(b"msg still there", timeout=2)
            except TimeoutError:
                replies = None
        assert replies is not None, (
            f"the panel stopped answering: 'msg' waited {time.monotonic() - started:.1f} s behind 'eject -t 200'"
        )
    finally:
        running.printer.heat_per_poll_c = 1000.0  # let the stuck eject finish, so that the daemon can stop
        running.stop()


# -- CLI arguments -------------------------------------------------------------------------------------

NUMERIC = [
    (action, param)
    for action in REGISTRY
    if action.cli
    for param in action.params
    if param.minval is not None or param.maxval is not None or param.convert in (values.to_float, values.to_int)
]


def valid_words(action, skip):
    """name=value words for the required parameters other than `skip`, each valid on its own."""
    words = []
    for param in action.params:
        if param.name == skip or param.default is not REQUIRED:
            continue
        if param.convert in (values.to_float, values.to_int) or param.minval is not None:
            low = resolve_limit(param.minval, LIMITS)
            words.append(f"{param.name}={1 if low is None or low <= 1 else int(low) + 1}")
        else:
            words.append(f"{param.name}={'t' if param.name == 'heater' else 'x'}")
    return words


@st.composite
def bad_argument(draw):
    action, param = draw(st.sampled_from(NUMERIC))
    low, high = resolve_limit(param.minval, LIMITS), resolve_limit(param.maxval, LIMITS)
    choices = [
        st.sampled_from(
            [
                "nan",
                "inf",
                "-inf",
                "abc",
                "",
                "1e999",
                "-1e999",
                "0x1F",
                "1,5",
                "None",
                "[]",
                "1 2",
                "--",
                "true" if param.convert is not values.to_float else "ten",
            ]
        )
    ]
    whole = param.convert is values.to_int or param.name in ("speed", "ms", "hz", "num", "angle", "percent")
    if low is not None:
        # .filter: a distance or temperature is rounded to the 0.001 it is sent as (values.to_fixed), so
        # 300.00000000000006 is a valid 300; the bad values are those that are still out of range rounded.
        below = (
            st.integers(-(10**6), math.ceil(low) - 1)
            if whole
            else st.floats(-1e6, low, exclude_max=True).filter(lambda v: round(v, 3) < low)
        )
        below = below.map(str)
        if param.name in action.steps:
            # `settemp -5` is a relative step, valid whenever it is no larger than any value allowed.
            widest = max(abs(b) for b in (low, high) if b is not None)
            below = below.filter(lambda v: not v.startswith("-") or abs(float(v)) > widest)
        choices.append(below)
    if high is not None:
        top = max(10**6, 10 * high)
        above = (
            st.integers(math.floor(high) + 1, top)
            if whole
            else st.floats(high, top, exclude_min=True).filter(lambda v: round(v, 3) > high)
        )
        choices.append(above.map(str))
    if whole:
        choices.append(st.sampled_from(["1.5", "2.25", "-0.5"]))
    return action, param, draw(st.one_of(choices))


@pytest.fixture(scope="module")
def recording_stub(workdir):
    """A stub OctoPrint that records every request, and an environment pointing the CLI at it."""
    with StubServer(idle_octoprint_routes()) as stub:
        with pytest.MonkeyPatch.context() as mp:
            for key in [k for k in os.environ if k.startswith(LEAKY_PREFIXES)]:
                mp.delenv(key)
            mp.setenv("HOME", str(workdir))
            mp.setenv("OCTOPRINT_URL", stub.url)
            mp.setenv("OCTOPRINT_API_KEY", "fuzz-key-0123456789")
            mp.setenv("OCTOPANEL_NO_DAEMON", "1")
            yield stub


def test_every_numeric_parameter_is_covered():
    assert len(NUMERIC) >= 25 and {a.name for a, _p in NUMERIC} >= {"jog", "ex", "settemp", "setbed", "speed", "fan"}


@settings(FUZZ, max_examples=250)
@given(case=bad_argument())
def test_bad_numbers_on_the_command_line_exit_2_and_send_nothing(recording_stub, case):
    action, param, value = case
    argv = [action.command_names[0], f"{param.name}={value}", *valid_words(action, param.name)]
    recording_stub.requests.clear()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv, prog="octopanel")
    assert code == 2, (argv, code, out.getvalue(), err.getvalue())
    assert param.name in err.getvalue(), (argv, err.getvalue())
    assert recording_stub.requests == [], (argv, recording_stub.requests)


LEGACY_CASES = [
    ("8jog", ["0", "0", "9999"]),
    ("8jog", ["x"]),
    ("8settemp", ["300"]),
    ("8setbed", ["-121"]),  # a step (-1 is one now) larger than max_bed_temp
    ("8ex", ["nan"]),
    ("8fan", ["256"]),
    ("8speed", ["0"]),
    ("8servo", ["1", "181"]),
    ("8beep", ["0"]),
    ("8sleep", ["1e999"]),
    ("8alarm", ["t", "501"]),
    ("8eject", ["-t", "999"]),
]


def test_bad_numbers_through_the_installed_8xxx_scripts_exit_2_and_send_nothing(recording_stub, tmp_path):
    recording_stub.requests.clear()
    env = clean_env(tmp_path, OCTOPRINT_URL=recording_stub.url, OCTOPRINT_API_KEY="fuzz-key-0123456789")
    procs = [
        (
            name,
            args,
            subprocess.Popen(
                [str(BIN / name), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ),
        )
        for name, args in LEGACY_CASES
    ]
    for name, args, proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "Traceback" not in err, (name, args, proc.returncode, err)
    assert recording_stub.requests == []
