"""The executor against a stateful fake of the client: order, merging, the cap, staleness, pause retries."""

import time
from decimal import Decimal

from executorwait import wait_idle
from fakeprinter import FakePrinter
from hypothesis import given, settings
from hypothesis import strategies as st

from octopanel import settings as settings_mod
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.daemon.executor import Executor
from octopanel.daemon.jobs import Job

REGISTRY = build_registry()
SETTINGS = settings_mod.load(env={})


def make(printer, **kw):
    ctx = Context(client=printer, settings=SETTINGS)
    return Executor(ctx, **kw).start()


def job_for(line, created=None, **kw):
    call = REGISTRY.parse_line(line, SETTINGS.limits)
    return Job(resolve=lambda state: call, created=time.monotonic() if created is None else created, label=line, **kw)


def test_jobs_run_in_order_one_at_a_time():
    printer = FakePrinter(delay_s=0.005)
    ex = make(printer)
    for i in range(5):
        ex.submit(job_for(f"msg {i}"))
    assert wait_idle(ex)
    ex.stop()
    assert printer.sent == [("gcode", f"M117 {i}") for i in range(5)]


def test_jog_refused_while_printing_sends_nothing():
    printer = FakePrinter(state="printing")
    done = []
    ex = make(printer)
    ex.on_done = lambda job, call, outcome: done.append(outcome)
    for line in ("jog z=1", "home", "ex 5"):
        ex.submit(job_for(line))
    assert wait_idle(ex)
    ex.stop()
    assert printer.sent == []
    assert all("refused" in str(o) for o in done) and len(done) == 3


def test_a_jog_is_sent_without_a_state_read_and_octoprints_refusal_is_explained():
    """As the dispatcher queues a jog (Action.reads_state_first is False): the state is read once when the
    worker starts, then only to explain a 409."""
    printer, reads, done = FakePrinter(), [], []
    state = printer.state
    printer.state = lambda: reads.append(printer.state_name) or state()
    ex = make(printer)
    ex.on_done = lambda job, call, outcome: done.append(outcome)
    ex.submit(job_for("jog z=1", needs_state=False))
    assert wait_idle(ex)
    assert printer.sent == [("jog", None, None, 1.0)] and reads == ["idle"]
    printer.state_name = "printing"
    ex.submit(job_for("jog z=1", needs_state=False))
    assert wait_idle(ex)
    ex.stop()
    assert printer.sent == [("jog", None, None, 1.0)] and reads == ["idle", "printing"]
    assert str(done[-1]) == "jog refused: the printer is printing (jog needs it idle or paused); nothing sent"


def test_a_job_older_than_stale_s_is_dropped():
    printer = FakePrinter()
    ex = make(printer, stale_s=2.0)
    printer.gate.clear()  # OctoPrint hangs on the first request
    ex.submit(job_for("msg first", needs_state=False))  # sent before the outage: it is in flight
    time.sleep(0.05)
    ex.submit(job_for("jog z=1", created=time.monotonic() - 0.5))
    clock_jump = time.monotonic() + 3.0
    ex.clock = lambda: clock_jump  # 3 s pass before the outage ends
    printer.gate.set()
    assert wait_idle(ex)
    ex.stop()
    assert printer.sent == [("gcode", "M117 first")]
    assert ex.stats.stale == 1


def test_pause_is_retried_through_an_outage_until_it_succeeds():
    printer = FakePrinter(state="printing")
    printer.unreachable = True
    ex = make(printer)
    ex.submit(job_for("msg not retried"))  # an ordinary action fails at once during the outage
    ex.submit(job_for("pause", retry_until=time.monotonic() + 5))
    time.sleep(0.8)
    printer.unreachable = False
    assert wait_idle(ex)
    ex.stop()
    assert printer.sent == [("pause", "pause")]
    assert ex.stats.failed == 1


def test_pause_gives_up_at_its_deadline():
    printer = FakePrinter(state="printing")
    printer.unreachable = True
    ex = make(printer)
    ex.submit(job_for("pause", retry_until=time.monotonic() + 0.3))
    assert wait_idle(ex, 5)
    ex.stop()
    assert printer.sent == [] and ex.stats.failed == 1


def test_discard_drops_what_an_unplugged_device_queued():
    printer = FakePrinter()
    printer.gate.clear()
    ex = make(printer)
    ex.submit(job_for("msg in flight", origin="other"))
    time.sleep(0.05)
    for _ in range(3):
        ex.submit(job_for("jog z=1", origin="keypad"))
    assert ex.discard("keypad") == 3
    printer.gate.set()
    assert wait_idle(ex)
    ex.stop()
    assert printer.sent == [("gcode", "M117 in flight")]


@settings(max_examples=60, deadline=None)
@given(
    burst=st.lists(st.sampled_from([1, 1, 1, -1, 2, -3]), min_size=1, max_size=120),
    step=st.sampled_from(["0.1", "0.05", "1", "10"]),
    delay=st.sampled_from([0.0, 0.001, 0.003]),
    cap=st.sampled_from([5.0, 50.0]),
)
def test_detents_are_conserved_exactly_and_respect_the_cap(burst, step, delay, cap):
    printer = FakePrinter(delay_s=delay)
    ex = make(printer, max_outstanding_mm=cap)
    call = REGISTRY.parse_line(f"jog z={step}", SETTINGS.limits)
    accepted = 0
    for units in burst:
        job = Job(
            resolve=lambda state: call,
            created=time.monotonic(),
            label="dial",
            merge_key=("dial",),
            units=units,
            unit_axes={"z": float(step)},
        )
        if ex.submit(job):
            accepted += job.units  # submit() trims units beyond the cap
    assert wait_idle(ex, 30)
    ex.stop()
    sent = sum(Decimal(repr(z)) for _kind, _x, _y, z in printer.sent)
    assert sent == Decimal(step) * accepted
    for _kind, _x, _y, z in printer.sent:
        assert abs(z) <= cap + 1e-9
    if sum(abs(u) for u in burst) * float(step) <= cap:
        assert accepted == sum(burst) and ex.stats.capped_units == 0


def test_an_octoprint_down_at_start_is_noticed_and_polled_for_until_it_answers():
    """The worker reads the state when it starts (a Pi booting may start us before OctoPrint): unreachable
    then, it polls every RECOVERY_POLL_S with nothing queued, and stops once OctoPrint answers."""
    from octopanel.daemon.executor import RECOVERY_POLL_S

    printer, reads, done = FakePrinter(), [], []
    printer.unreachable = True
    state = printer.state
    printer.state = lambda: reads.append(printer.unreachable) or state()
    ex = Executor(Context(client=printer, settings=SETTINGS), on_done=lambda job, call, outcome: done.append(job))
    ex.start()
    deadline = time.monotonic() + 5
    while len(reads) < 2:  # the read at start, then a poll
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert ex.unreachable and ex.last_state is None
    printer.unreachable = False
    deadline = time.monotonic() + RECOVERY_POLL_S + 2
    while ex.unreachable:
        assert time.monotonic() < deadline, "OctoPrint's return was not noticed"
        time.sleep(0.01)
    assert ex.last_state.name == "idle" and done == [None]  # one "answers again" for the daemon's status
    polls = len(reads)
    time.sleep(RECOVERY_POLL_S * 1.5)
    ex.stop()
    assert len(reads) == polls  # no more polling once it answers
