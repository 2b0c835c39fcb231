"""The jog cap counts motion the printer has not finished (modelled), and detents merge net at submit time."""

import re
import time
from decimal import Decimal

from executorwait import wait_idle

from octopanel import settings
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context
from octopanel.daemon.executor import Executor
from octopanel.panel import keymap
from octopanel.panel.gesture_config import Gesture
from octopanel.panel.router import Dispatcher
from octopanel.printers.octoprint.client import Client

REGISTRY = build_registry()
SETTINGS = settings.load(env={})
KEYMAP = """\
feedback: {beep: false, message: false, leds: "off"}
settings: {max_outstanding_mm: 20, stale_s: 10}
rotary:
  REL_DIAL: "jog z=%s"
"""


def panel(printer, tmp_path, step):
    path = tmp_path / "keymap.yaml"
    path.write_text(KEYMAP % step)
    km = keymap.load(path, REGISTRY, SETTINGS.limits)
    client = Client(printer.url, printer.api_key)
    ex = Executor(Context(client=client, settings=SETTINGS), km.settings["stale_s"], km.settings["max_outstanding_mm"])
    ctx = ex.ctx
    dispatch = Dispatcher(km, REGISTRY, ctx, ex)
    ex.start()
    assert wait_idle(ex, 5)
    return ex, dispatch, client


def z_sent(printer, mark):
    return sum(
        (Decimal(m.group(1)) for line in printer.sent_since(mark) if (m := re.match(r"G0 Z(-?[\d.]+)", line))),
        Decimal(0),
    )


def dial(dispatch, steps):
    dispatch.gesture(Gesture("rotary", "REL_DIAL", time.monotonic(), "wheel", steps))


def test_a_wiggled_wheel_nets_out_exactly_and_never_fills_the_queue(printer, tmp_path):
    """600 +1/-1 pairs then 20 +1 at 0.1 mm: exactly +2.0 mm reaches the printer (before: 'queue full')."""
    ex, dispatch, client = panel(printer, tmp_path, "0.1")
    try:
        mark = printer.mark()
        for _ in range(600):
            dial(dispatch, 1)
            dial(dispatch, -1)
        for _ in range(20):
            dial(dispatch, 1)
        assert wait_idle(ex, 20)
        printer.wait_sent(mark, lambda sent: z_sent(printer, mark) == Decimal("2.0"), timeout=5)
        assert ex.stats.dropped_queue_full == 0 and ex.stats.capped_units == 0
    finally:
        ex.stop()
        client.close()


def test_a_fast_burst_is_capped_by_the_physical_backlog(printer, tmp_path):
    """Cap 20, step 10: 30 detents in 0.15 s send 20 mm (10 mm of Z takes 3 s at F200), never 26-30 moves."""
    ex, dispatch, client = panel(printer, tmp_path, "10")
    try:
        mark = printer.mark()
        start = time.monotonic()
        for k in range(30):
            while time.monotonic() < start + k * 0.005:
                time.sleep(0.001)
            dial(dispatch, 1)
        assert wait_idle(ex, 10)
        printer.settle(mark)
        assert z_sent(printer, mark) == Decimal(20)
        assert ex.motion.peak_mm["z"] <= 20 + 1e-9 and ex.stats.capped_units == 28
    finally:
        ex.stop()
        client.close()
