"""The jog-wheel burst: detents written into the daemon's FIFO at a fixed rate; what reached the server, its lag.

Used by bench/daemon.py (stub, OctoPrint; with serial.log's G0 moves) and bench/moonraker.py (Klipper).
"""

import re
import time
from decimal import Decimal

from flavours import OCTOPRINT

STEP_MM = Decimal("0.1")


def total_mm(bodies, flavour=OCTOPRINT, axis="z"):
    return sum((flavour.distance(b, axis) for b in bodies), Decimal(0))


def serial_z(vp, mark):
    return [Decimal(m.group(1)) for line in vp.sent_since(mark) if (m := re.match(r"G0 Z(-?[\d.]+)", line))]


def burst(recorder, daemon, detents=1000, hz=500, vp=None, flavour=OCTOPRINT, axis="z", quiet_s=2.0):
    """`detents` REL_DIAL +1 events at `hz`, each a jog of `axis` by STEP_MM; what reached the server, its
    exactness and its lag. It ends quiet_s after the last request, or 0.3 s once all of it has arrived."""
    expected = STEP_MM * detents

    def jogs_of(records):
        return [r for r in records if flavour.is_jog(r)]

    recorder.drain()
    mark = vp.mark() if vp is not None else None
    period = 1 / hz
    start = time.monotonic()
    first = last = None
    for k in range(detents):
        delay = start + k * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        last = daemon.dial(1)
        first = first if first is not None else last
    records = []
    while True:
        try:
            records.append(recorder.wait_for(lambda r: True, timeout=quiet_s))
        except TimeoutError:
            break
        if total_mm((r["b"] for r in jogs_of(records)), flavour, axis) >= expected:
            quiet_s = 0.3  # the total is there: wait only briefly for anything extra
    jogs = jogs_of(records)
    total = total_mm((r["b"] for r in jogs), flavour, axis)
    result = {
        "detents": detents,
        "last_detent": last,
        "rate_hz": (detents - 1) / (last - first),
        "jog_requests": len(jogs),
        "other_requests": len(records) - len(jogs),
        "expected_mm": expected,
        "received_mm": total,
        "error_mm": total - expected,
        "lag_arrival": jogs[-1]["t"] - last if jogs else None,
        "lag_done": jogs[-1]["done"] - last if jogs else None,
        "last_done": jogs[-1]["done"] if jogs else None,
    }
    if vp is not None:
        deadline = time.monotonic() + 5
        while sum(serial_z(vp, mark)) != total and time.monotonic() < deadline:
            time.sleep(0.05)
        moves = serial_z(vp, mark)
        result.update(serial_moves=len(moves), serial_mm=sum(moves), serial_error_mm=sum(moves) - expected)
    return result
