"""Safety property: whatever keys are pressed, in whatever printer state, nothing unsafe reaches the printer.

10,000 seeded random key sequences through the default keymap (etc/keymap.yaml), the real GestureEngine,
Dispatcher and Executor, against FakeOctoPrint (tests/fakeprinter.py), a stateful fake whose state also
changes on its own. Timestamps are injected (virtual time), so holds, doubles and repeats are exact and
the run is fast. The fake records every command it receives, refused ones included, with the state and
hotend temperature at that moment; the property is checked on that record:
- no extrude or motion G-code while printing, pausing, resuming, cancelling or finishing, and no jog or
  home accepted then (they are sent without a state read first: OctoPrint refuses them in that request);
- no extrusion (extrude, or a G0/G1 with an E word) with the hotend below min_extrude_temp;
- no temperature target outside 0..max_tool_temp / 0..max_bed_temp;
- cancel, restart and power/connection commands (off, on, reset, system, disconnect, reconnect) only from
  a hold or a double, and cancel only if a cancel key really was held for hold_s.
Random control-socket lines (numbers in and out of range, wrong types) are mixed in, so that the limits
are exercised, not only the keymap's fixed values. Then 20 sequences run against the real OctoPrint
while it prints, and its serial.log must show nothing forbidden.

Staleness is switched off here (stale_s is huge): it only ever drops jobs, and every job should reach
the guards. Each sequence is fed completely before the worker drains it, so that runs are reproducible.
"""

import logging
import random
import re
import time
from pathlib import Path

import evdev
from evdev import ecodes as e
from fakeprinter import STATES_ALL, FakeOctoPrint

from octopanel import settings
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.daemon.executor import Executor
from octopanel.daemon.loop import NO_TIMING
from octopanel.input.keynames import key_code
from octopanel.panel import keymap
from octopanel.panel.gesture_config import RotaryConfig
from octopanel.panel.gestures import GestureEngine
from octopanel.panel.router import Dispatcher
from octopanel.printers.backend import BUSY_STATES
from octopanel.printers.octoprint.client import Client

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings.load(env={})
LIMITS = SETTINGS.limits
REGISTRY = build_registry()
KM = keymap.load(ROOT / "etc" / "keymap.yaml", REGISTRY, LIMITS)
HOLD_S = KM.settings["hold_s"]
SEQUENCES = int(__import__("os").environ.get("SEQ", 10_000))
REAL_SEQUENCES = 20

BOUND = sorted({key for (_layer, key, _gesture) in KM.bindings} | set(KM.shifts))
UNBOUND = ["KEY_A", "KEY_KPEQUAL", "KEY_KPCOMMA", "KEY_ESC", "BTN_0"]
CANCEL_KEYS = {k for (_l, k, g), bs in KM.bindings.items() for b in bs if b.line.split()[0] in ("cancel", "xcancel")}
DANGEROUS_KINDS = {"system", "disconnect", "connect"}
DANGEROUS_GCODE = {"M80", "M81"}
# The oracle's own list of G-code that moves the head or extrudes (not the code's allow list).
MOTION_GCODES = frozenset(
    {
        "G0",
        "G1",
        "G2",
        "G3",
        "G5",
        "G6",
        "G10",
        "G11",
        "G12",
        "G27",
        "G28",
        "G29",
        "G30",
        "G34",
        "G35",
        "G42",
        "G60",
        "G61",
        "G80",
        "G425",
        "M600",
        "M701",
        "M702",
        "M125",
    }
)
NUMBERS = [
    "0",
    "1",
    "-1",
    "0.1",
    "-0.1",
    "5",
    "10",
    "50",
    "170",
    "200",
    "285",
    "285.1",
    "286",
    "300",
    "120",
    "121",
    "500",
    "-5",
    "1e3",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "abc",
    "''",
    "9" * 40,
    "0x10",
    "1_0",
    "7.77",
]
SOCKET_LINES = [
    "settemp {n}",
    "setbed {n}",
    "settempr {n}",
    "setbedr {n}",
    "jog x={n}",
    "jog y={n} z={n}",
    "jog {n}",
    "jog x={n} speed={n}",
    "ex {n}",
    "ex {n} speed={n}",
    "fex {n}",
    "home",
    "eject",
    "g G28",
    "g G1 X{n}",
    "g G0 Z{n}",
    "gmulti G91 'G1 Z{n}' G90",
    "g1 X{n}",
    "g0 Y{n}",
    "speed {n}",
    "feed {n}",
    "fan {n}",
    "msg {n}",
    "g M290 Z0.02",
    "getpos",
    "beep {n}",
    "pause",
    "resume",
    "mode step next",
    "mode step {n}",
    "stepoff",
    "jgo z=1",
    "jog",
    "jog q=1",
    "settemp",
    "settemp 1 2",
]


# -- random input ------------------------------------------------------------------------------------


def random_sequence(rng, keys=None, lines=SOCKET_LINES, short_only=False, t0=1000.0):
    """[(t, kind, payload)]: raw key events ('ev', (type, code, value))) and socket lines ('line', text).

    Presses overlap, repeat fast (doubles), last just under, at, or over hold_s; kernel autorepeats and
    SYN_DROPPED turn up; every key is released at the end. Also returns the presses as (key, duration)."""
    keys = keys or BOUND * 3 + UNBOUND
    items, presses, busy_until = [], [], {}
    t = t0
    for _ in range(rng.randint(1, 14)):
        t += rng.choice([rng.uniform(0.0, 0.05), rng.uniform(0.05, 0.4), rng.uniform(0.3, 1.2), rng.uniform(1, 3)])
        if lines and rng.random() < 0.25:
            items.append((t, "line", rng.choice(lines).format(n=rng.choice(NUMBERS))))
            continue
        key = rng.choice(keys)
        if busy_until.get(key, 0) >= t:
            continue
        if short_only:
            duration = rng.uniform(0.005, HOLD_S - 0.01)
        else:
            duration = rng.choice(
                [rng.uniform(0.005, 0.3), rng.uniform(0.6, HOLD_S - 0.001), HOLD_S, rng.uniform(HOLD_S, 2.5)]
            )
        busy_until[key] = t + duration
        presses.append((key, duration))
        code = key_code(key)
        items.append((t, "ev", (e.EV_KEY, code, 1)))
        for _ in range(rng.choice([0, 0, 1, 3])):  # kernel autorepeat while held
            items.append((t + rng.uniform(0, duration), "ev", (e.EV_KEY, code, 2)))
        items.append((t + duration, "ev", (e.EV_KEY, code, 0)))
        if rng.random() < 0.03:
            items.append((t + rng.uniform(0, duration), "ev", (e.EV_SYN, e.SYN_DROPPED, 0)))
    items.sort(key=lambda item: item[0])
    return items, presses


# -- the harness -------------------------------------------------------------------------------------


class Harness:
    """GestureEngine → Dispatcher → Executor (its real worker thread) on virtual time, like daemon/loop.py wires them."""

    def __init__(self, client):
        self.ctx = Context(client=client, settings=SETTINGS)
        self.now = 0.0
        self.done, self.replies = [], []

    def _done(self, job, call, outcome):
        if job is None:
            return  # the worker read the state on its own (at its start), as Daemon._done allows
        self.done.append((job.label, call, outcome))
        if isinstance(outcome, Exception):
            self.dispatch.refused(job, outcome)  # as Daemon._done: a refusal beeps, queued behind

    def run(self, items, device="keypad"):
        clock = lambda: self.now  # noqa: E731
        executor = Executor(
            self.ctx, stale_s=1e9, max_outstanding_mm=KM.settings["max_outstanding_mm"], clock=clock, on_done=self._done
        )
        self.dispatch = Dispatcher(KM, REGISTRY, self.ctx, executor, clock)
        engine = GestureEngine(
            lambda key: KM.timings.get(key, NO_TIMING),
            RotaryConfig(
                shuttle=lambda label: KM.shuttle, key_pairs=KM.key_pairs, shuttle_idle_s=KM.settings["shuttle_idle_s"]
            ),
        )
        for t, kind, payload in items:
            self._tick(engine, t)
            self.now = t
            if kind == "ev":
                sec, usec = divmod(round(t * 1e6), 1_000_000)
                for gesture in engine.feed(evdev.InputEvent(sec, usec, *payload), device):
                    self.dispatch.gesture(gesture)
                if payload[0] == e.EV_KEY or payload[1] == e.SYN_DROPPED:
                    for gesture in engine.feed(evdev.InputEvent(sec, usec, e.EV_SYN, e.SYN_REPORT, 0), device):
                        self.dispatch.gesture(gesture)
            else:
                try:
                    self.dispatch.request("line", payload, self.replies.append)
                except Exception as exc:  # noqa: BLE001  what control.ControlServer.handle_line does
                    self.replies.append({"ok": False, "error": f"internal error: {exc}", "exit": 1})
        self._tick(engine, float("inf"))
        executor.start()
        deadline = time.monotonic() + 30
        while executor.pending():
            assert time.monotonic() < deadline, "the executor did not drain"
            time.sleep(0)
        executor.stop()

    def _tick(self, engine, until):
        """Fire timers as the daemon's loop does: at each deadline up to `until`."""
        while (deadline := engine.next_deadline()) is not None and deadline <= until:
            self.now = deadline
            for gesture in engine.tick(deadline):
                self.dispatch.gesture(gesture)


# -- the property ------------------------------------------------------------------------------------


def temperature(line):
    words = line.upper().split()
    return next((float(w[1:]) for w in words[1:] if w.startswith("S") and re.fullmatch(r"S-?[\d.]+", w)), None)


def violations(printer, done, presses):
    """What went wrong in one sequence, as readable strings (empty: the property held)."""
    found = []
    for r in printer.received:
        where = f"{r.kind}{r.args} while {r.state}, hotend {r.hotend:g}"
        if r.kind == "extrude" and r.state in BUSY_STATES:
            found.append("motion while printing: " + where)
        # jog and home go out without a state read first: OctoPrint refuses them itself in that request
        # (server/api/printer.py, modelled by the fake), so what must never happen is one being accepted.
        if r.kind in ("jog", "home") and r.state in BUSY_STATES and r.accepted:
            found.append("motion while printing: " + where)
        if r.kind == "extrude" and r.hotend < SETTINGS.min_extrude_temp:
            found.append("cold extrusion: " + where)
        if r.kind == "tool_target" and not all(0 <= v <= LIMITS["max_tool_temp"] for v in r.args[0].values()):
            found.append("hotend target out of limits: " + where)
        if r.kind == "bed_target" and not 0 <= r.args[0] <= LIMITS["max_bed_temp"]:
            found.append("bed target out of limits: " + where)
        if r.kind in DANGEROUS_KINDS:
            found.append("power or connection command from the keypad: " + where)
        if (
            r.kind == "job"
            and r.args[0] in ("cancel", "restart")
            and not any(k in CANCEL_KEYS and d >= HOLD_S for k, d in presses)
        ):
            found.append("cancel without a cancel key held for hold_s: " + where)
        for line in r.args if r.kind == "gcode" else ():
            word = line.split()[0].upper()
            if word in MOTION_GCODES and r.state in BUSY_STATES:
                found.append(f"motion G-code {line!r} while {r.state}")
            if word in ("G0", "G1") and re.search(r"\bE-?[\d.]", line.upper()) and r.hotend < SETTINGS.min_extrude_temp:
                found.append(f"cold extrusion {line!r} with the hotend at {r.hotend:g}")
            temp = temperature(line)
            if word in ("M104", "M109") and temp is not None and not 0 <= temp <= LIMITS["max_tool_temp"]:
                found.append(f"hotend target out of limits: {line!r}")
            if word in ("M140", "M190") and temp is not None and not 0 <= temp <= LIMITS["max_bed_temp"]:
                found.append(f"bed target out of limits: {line!r}")
            if word in DANGEROUS_GCODE:
                found.append(f"power G-code {line!r} from the keypad")
    for label, call, _outcome in done:
        if call is not None and call.action.dangerous and not label.startswith("socket"):
            gesture = label.split()[1]
            if gesture not in ("hold", "double"):
                found.append(f"dangerous '{call.action.name}' from a {gesture}: {label}")
    return found


class UnexpectedErrors(logging.Handler):
    """Collects the executor's 'unexpected error' logs: an action that crashed instead of refusing."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_nothing_unsafe_reaches_the_printer_in_10000_random_sequences():
    errors = UnexpectedErrors()
    logging.getLogger("octopanel").addHandler(errors)
    failures, counts = [], {"jobs": 0, "sent": 0, "refused": 0, "cancels": 0, "extrusions": 0, "holds": 0}
    try:
        for seed in range(SEQUENCES):
            rng = random.Random(seed)
            items, presses = random_sequence(rng, short_only=seed % 4 == 0)
            printer = FakeOctoPrint(
                state=rng.choice(sorted(STATES_ALL)),
                hotend=rng.choice([21, 160, 170, 210]),
                rng=rng,
                chaos=rng.choice([0.0, 0.05, 0.2]),
            )
            if rng.random() < 0.5:
                printer.tool_target_c = printer.hotend  # holding its temperature, as after a preheat
            harness = Harness(printer)
            harness.run(items)
            found = violations(printer, harness.done, presses)
            if found:
                failures.append((seed, found, items))
            counts["jobs"] += len(harness.done)
            counts["sent"] += sum(r.accepted for r in printer.received)
            counts["refused"] += sum(not r.accepted for r in printer.received)
            counts["cancels"] += sum(r.kind == "job" and r.args[0] == "cancel" for r in printer.received)
            counts["extrusions"] += sum(r.kind == "extrude" for r in printer.received)
            counts["holds"] += sum(d >= HOLD_S for _k, d in presses)
    finally:
        logging.getLogger("octopanel").removeHandler(errors)
    assert not failures, f"{len(failures)} of {SEQUENCES} sequences broke the property; first ones:\n" + "\n".join(
        f"seed {seed}: {found[:3]}\n  input: {items}" for seed, found, items in failures[:3]
    )
    assert not errors.records, [r.getMessage() for r in errors.records[:5]]
    # The property is only worth something if the guards were tested: things were sent, refused, cancelled.
    n = SEQUENCES
    assert (
        counts["sent"] > 5 * n
        and counts["refused"] > n
        and counts["cancels"] > n / 50
        and counts["extrusions"] > n / 50
    ), counts


def test_the_checker_sees_each_kind_of_violation():
    """The property is only as good as violations(): feed it one record of each forbidden kind."""
    from fakeprinter import Received

    printer = FakeOctoPrint()
    printer.received = [
        Received("jog", (1, None, None), "pausing", 210),
        Received("extrude", (5,), "idle", 150),
        Received("home", (("x",),), "printing", 210, accepted=False),  # refused: no violation
        Received("tool_target", ({"tool0": 300},), "idle", 21),
        Received("bed_target", (121,), "idle", 21),
        Received("gcode", ("G28",), "printing", 210),
        Received("gcode", ("G1 E5 F300",), "idle", 100),
        Received("gcode", ("M104 S300",), "idle", 21),
        Received("gcode", ("M81",), "idle", 21),
        Received("disconnect", (), "idle", 21),
        Received("job", ("cancel", None), "printing", 21),
    ]
    found = violations(
        printer, [("KEY_KPDOT press", REGISTRY.parse_line("cancel", LIMITS), None)], [("KEY_KPDOT", HOLD_S - 0.01)]
    )
    kinds = [
        "motion while",
        "cold extrusion: extrude",
        "hotend target",
        "bed target",
        "motion G-code",
        "cold extrusion 'G1",
        "hotend target out of limits: 'M104",
        "power G-code",
        "power or connection",
        "cancel without",
        "dangerous 'cancel' from a press",
    ]
    assert [k for k in kinds if not any(f.startswith(k) for f in found)] == [], found
    assert not [f for f in found if f.startswith("motion while printing: home")], found


def test_short_presses_alone_never_cancel_or_cut_power():
    """Every key bound in the default keymap, pressed briefly (and double-pressed) in every state."""
    for state in sorted(STATES_ALL):
        for key in BOUND:
            code, t = key_code(key), 1000.0
            items = []
            for gap in (0.5, 0.1, 0.5, 0.02):  # single presses and doubles
                items += [(t, "ev", (e.EV_KEY, code, 1)), (t + 0.05, "ev", (e.EV_KEY, code, 0))]
                t += gap
            printer = FakeOctoPrint(state=state, hotend=210)
            harness = Harness(printer)
            harness.run(items)
            assert violations(printer, harness.done, [(key, 0.05)]) == []
            assert not [r for r in printer.received if r.kind == "job" and r.args[0] in ("cancel", "restart")]


def test_a_sample_against_the_real_octoprint_while_printing(printer):
    """20 sequences against the real OctoPrint mid-print: serial.log shows no motion, no extrusion, no
    out-of-limit temperature, no power G-code, and the print is never cancelled or paused."""
    printer.print_file()
    mark = printer.mark()
    keep_printing = [k for k in BOUND if k not in CANCEL_KEYS and k != "KEY_KPENTER"]  # short presses only
    lines = [line for line in SOCKET_LINES if line.split()[0] not in ("pause", "resume")]
    client = Client(printer.url, printer.api_key, read_timeout=10)
    rng = random.Random(20251123)
    sent_jobs = 0
    try:
        for _ in range(REAL_SEQUENCES):
            items, _presses = random_sequence(
                rng, keys=keep_printing * 3 + UNBOUND + sorted(CANCEL_KEYS), lines=lines, short_only=True
            )
            harness = Harness(client)
            harness.run(items)
            sent_jobs += len(harness.done)
            assert "printing" in printer.flags()
    finally:
        client.close()
    sent = printer.settle(mark)
    job_lines = {"G90", "G1 X180 F3000", "G1 X20 F3000"}
    forbidden = []
    for line in sent:
        word = line.split()[0].upper()
        if word in ("G91", "M83", "M82", "M80", "M81") or (word in MOTION_GCODES and line not in job_lines):
            forbidden.append(line)
        temp = temperature(line)
        if temp is not None and (
            word in ("M104", "M109")
            and not 0 <= temp <= LIMITS["max_tool_temp"]
            or word in ("M140", "M190")
            and not 0 <= temp <= LIMITS["max_bed_temp"]
        ):
            forbidden.append(line)
    assert forbidden == [], forbidden
    assert sent_jobs > 50
    assert any(line.startswith(("M300", "M117", "M104", "M106", "M290")) for line in sent), sent  # things did go
    flags = printer.flags()
    assert "printing" in flags and not flags & {"paused", "pausing", "cancelling"}, flags
