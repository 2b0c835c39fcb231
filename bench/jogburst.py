"""Jog-wheel bursts against the real OctoPrint: distance sent vs asked, physical backlog vs cap, stop lag.

Usage: python bench/jogburst.py [--runs N]. In-process daemon path (dispatcher → executor → client), as a
press travels in `octopanel run`. The Virtual Printer executes moves at once, so the backlog is the
executor's model (octopanel/daemon/backlog.py: each move's length at its feed rate, one after another); the stop
lag is measured: from the last detent until serial.log stops receiving moves.
"""

import argparse
import re
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # executorwait, shared with the tests

from executorwait import wait_idle  # noqa: E402

from octopanel import settings as settings_mod  # noqa: E402
from octopanel.actions import build_registry  # noqa: E402
from octopanel.actions.invoke import Context  # noqa: E402
from octopanel.daemon.executor import Executor  # noqa: E402
from octopanel.panel import keymap  # noqa: E402
from octopanel.panel.gesture_config import Gesture  # noqa: E402
from octopanel.panel.router import Dispatcher  # noqa: E402
from octopanel.printers.octoprint.client import Client  # noqa: E402
from octopanel.sandbox.virtualprinter import VirtualPrinter  # noqa: E402

CAP_MM = 20.0
KEYMAP = """\
feedback: {beep: false, message: false, leds: "off"}
settings: {max_outstanding_mm: %g, stale_s: 10}
rotary:
  REL_DIAL: "jog z=%s"
"""
SCENARIOS = (  # name, detents, spacing (s), step (mm)
    ("300 detents in 0.15 s, step 1", 300, 0.15 / 300, "1"),
    ("1,000 at 500 Hz, step 0.01 (under the cap)", 1000, 1 / 500, "0.01"),
    ("1,000 at 500 Hz, step 0.1", 1000, 1 / 500, "0.1"),
)
MOVE = re.compile(r"G0 Z(-?[\d.]+)")


def z_lines(vp, mark):
    return [Decimal(m.group(1)) for line in vp.sent_since(mark) if (m := MOVE.match(line))]


def one_run(vp, workdir, detents, spacing, step):
    path = Path(workdir) / "keymap.yaml"
    path.write_text(KEYMAP % (CAP_MM, step))
    registry = build_registry()
    settings = settings_mod.load(env={})
    km = keymap.load(path, registry, settings.limits)
    client = Client(vp.url, vp.api_key)
    ex = Executor(Context(client=client, settings=settings), km.settings["stale_s"], km.settings["max_outstanding_mm"])
    dispatch = Dispatcher(km, registry, ex.ctx, ex)
    ex.start()
    wait_idle(ex, 5)
    jog_speed = float(client.profile()["axes"]["z"]["speed"])  # mm/min
    try:
        mark = vp.mark()
        start = time.monotonic()
        for k in range(detents):
            while time.monotonic() < start + k * spacing:
                pass
            dispatch.gesture(Gesture("rotary", "REL_DIAL", time.monotonic(), "wheel", 1))
        last_detent = time.monotonic()
        # Poll serial.log: the stop lag ends when the last move arrived (no new move for 1 s after it).
        count, last_change = 0, last_detent
        while time.monotonic() - last_change < 1.0 and time.monotonic() - last_detent < 60:
            n = len(z_lines(vp, mark))
            if n != count:
                count, last_change = n, time.monotonic()
            time.sleep(0.002)
        sent = sum(z_lines(vp, mark), Decimal(0))
        return {
            "asked": Decimal(step) * detents,
            "sent": sent,
            "moves": count,
            # 0: nothing reached the printer after the last detent (the cap had cut it already)
            "peak": ex.motion.peak_mm.get("z", 0.0),
            "lag": max(0.0, last_change - last_detent),
            "bound": CAP_MM / (jog_speed / 60) + 0.1,
        }
    finally:
        ex.stop()
        client.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with VirtualPrinter() as vp, tempfile.TemporaryDirectory() as workdir:
        vp.connect()
        print(f"cap {CAP_MM:g} mm; {args.runs} runs per scenario; medians (min-max)")
        print("| scenario | asked mm | sent mm | moves | peak backlog mm (cap) | stop lag ms | target ms |")
        print("|---|---|---|---|---|---|---|")
        for name, detents, spacing, step in SCENARIOS:
            runs = [one_run(vp, workdir, detents, spacing, step) for _ in range(args.runs)]
            sent = sorted(r["sent"] for r in runs)
            lag = [r["lag"] * 1000 for r in runs]
            peak = [r["peak"] for r in runs]
            print(
                f"| {name} | {runs[0]['asked']:g} | {statistics.median(sent):g} ({sent[0]:g}-{sent[-1]:g}) | "
                f"{statistics.median(r['moves'] for r in runs):g} | {statistics.median(peak):.2f} "
                f"(max {max(peak):.2f}; {CAP_MM:g}) | {statistics.median(lag):.0f} ({min(lag):.0f}-{max(lag):.0f})"
                f" | {runs[0]['bound'] * 1000:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
