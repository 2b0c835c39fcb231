"""Runs the benchmarks (bench/daemon.py, cli.py against one OctoPrint; moonraker.py) and writes bench/RESULTS.md.

Usage: python bench/run.py [--quick] [--out FILE]
"""

import argparse
import sys
from pathlib import Path

import benchenv
import cli as cli_bench
import daemon as daemon_bench
import moonraker as moonraker_bench

NOTES = """\
## How to read these figures

* **Side by side.** Every comparison is measured in the same run, interleaved in a random order, on a
  noisy 2-core machine that other jobs share (see the load average above). Medians and p50 are stable
  from run to run; p99 is not: one scheduling hiccup of a few ms in 100 samples moves it, for the
  daemon and for the bare client alike. Compare p99 figures only within one table.
* **Key press → request.** The benchmark writes one `struct input_event` press (+ `SYN_REPORT`) into the
  daemon's FIFO (`octopanel run --replay FIFO --live`) and takes t0 just before the write. A
  timing server in a child process stamps the request's arrival on the same CLOCK_MONOTONIC: for the stub,
  in its handler (the whole request read); for OctoPrint, in a small TCP proxy in front of it (first byte
  of the request), which also stamps when the answer went back ("answered"). The bare client is a
  keep-alive `requests.Session` in the benchmark process sending the same jog; t0 just before `post()`.
  It is set up as the daemon's session is (`printers.httpclient.environment_session`: proxies, NO_PROXY and ~/.netrc
  read once, not on every request, which saves requests ~0.1 ms a request), so that only the paths differ.
  `sh -c curl` is one curl spawned per key press, as actkbd's `system()` runs a command.
  *daemon − bare* is the difference of the percentiles.
* **First request vs jog request.** A jog needs no state read first: OctoPrint itself refuses a jog or a
  home with 409 when it is not idle or paused (`server/api/printer.py`), atomically in that request, and
  the daemon explains such a refusal from a state read made afterwards. So for the jog key both columns
  are the same request, and *daemon − bare* is what a key press costs the daemon itself (evdev read,
  gesture, keymap, queue, worker thread). Actions OctoPrint does not guard the same way (extrude, pause,
  resume, raw G-code…) still read `state.flags` first, one round trip (≈ 4 ms here) more.
* **The FIFO is read like a device.** With `--live` the daemon's loop selects on the FIFO and decodes it
  with evdev itself, as it does a keypad's event node. (A plain `--replay` has a pacing thread between
  the FIFO and the loop, which cost about 0.08 ms p50 and 0.24 ms p99 more per event when measured alone;
  earlier results in this file's history include it.)
* **Key → G0 in serial.log** is end to end to the (virtual) printer, with serial.log's 1 ms wall-clock
  stamps; OctoPrint logs a line about 6 ms after it accepted the request.
* **Burst.** 1,000 `REL_DIAL` +1 events at 500 Hz, keymap `REL_DIAL: "jog z=0.1"`, `max_outstanding_mm:
  1000`; the daemon merges the detents that arrive while a request is in flight. *Error* is the sum of
  the z distances the server received (and, for OctoPrint, of the G0 Z moves in serial.log) minus
  100 mm, in exact decimal arithmetic. The lag runs from the last detent written to the last jog's
  arrival / answer.
* **Wall time** is the time from spawning the command to its exit, from Python (`subprocess.run`), for
  the bench venv's console scripts (a regular, non-editable install) and `bench/8status.sh` /
  `bench/8jog.sh`. *Through the daemon*: `OCTOPANEL_SOCKET` and the daemon's `OCTOPRINT_URL` set (the
  fast path serves only the daemon's own settings) and no key, so a success proves the fast path was taken. *In-process*: `OCTOPANEL_NO_DAEMON=1` with `OCTOPRINT_URL`/`KEY`.
  *bash+curl* takes the connection from the environment too; *8control config* reads `~/.octocmd.conf`
  with `cat | grep | cut` as 8control does (four processes more). The ratios use the faster bash variant.
* **At rest.** Two daemons with the shipped `etc/keymap.yaml`, a control socket and no replay, idle side
  by side: one as it runs here, where `/dev/input` does not exist (so inotify watches `/dev` for its
  creation), and one "Pi-like", pointed at an existing empty directory so that inotify watches it, as
  it watches `/dev/input` on a Pi. Wake-ups
  are voluntary context switches per thread (each time a thread blocks again after waking); strace
  then shows which blocking call returned and with what timeout. No systemd watchdog is configured.

## Where the time goes (mechanisms, from the code and from tracing)

* **The daemon asks OctoPrint for the printer state only when the action needs it** (`Job.needs_state`,
  `Action.reads_state_first`): `8status` is one request (`GET /api/connection`), and so is `8jog`: the
  jog itself, which OctoPrint refuses while printing (see above); the printer profile, for the jog
  direction, is cached by the daemon for 60 s. bash+curl jogs blindly in one request too.
* **Fast-path imports** (`octopanel.cli.fast`, standard library only): `_socket` and `_json`, the C
  halves of `socket` and `json`. `import json` would pull in `re` and `enum` (about 5 ms, a third of
  the command), so the request and the reply go through `_json` directly; the installed scripts are
  three lines written by `setup.py` rather than pip's console-script wrapper, which imports `re` too.
  None of requests, yaml, evdev, re or json (a test pins this). Python's own start-up (`python -c pass`)
  is the largest single part.
* **No interpreter teardown.** The scripts call `octopanel.cli.script()`: a printer command flushes its
  output and leaves with `os._exit`. Python's teardown costs about 1.4 ms even on the fast path, and
  about 15-20 ms once `requests` is imported; a printer command has nothing left to tear down (its
  session is closed, it starts no thread). `octopanel run`, `login`, `demo`, `install`… exit normally.
* **In-process**: importing `requests` (through `octopanel.printers.octoprint.client`, about 55 ms) is most of the time;
  the *floor* row times `python -c` importing requests and sending one GET, which is what any
  requests-based command costs at least; like the scripts, it leaves with `os._exit` (no teardown), so
  the 8jog target (6 × bash's ~14 ms) lies below this floor whatever octopanel does. PyYAML is
  imported only when a YAML file is read. `8jog` sends two requests (the printer profile for the jog
  direction, then the jog) where bash sends one.
* **At rest**, the loop blocks in select() with no timeout unless something is due: a gesture timer or
  the systemd watchdog. Device hotplug is inotify on `/dev/input`, or on `/dev` until `/dev/input`
  exists; a rescan timer is left only for a system without inotify (`hotplug.py`). The worker thread
  sleeps on a condition variable with no timeout.
* **A key press**, before requests takes over, crosses evdev decoding, the gesture engine and the
  keymap's action parse on the main thread, then a
  hand-off to the worker thread, which waits for the GIL until the main thread is back in select().
  `requests` itself then spends about as long in Python before writing to the socket as it does for
  the bare client.
"""


def loadavg():
    return Path("/proc/loadavg").read_text().split()[:3]


def verdicts(daemon_results, cli_result, klipper_result):
    lines = []
    met_list = cli_bench.targets_met(cli_result) + daemon_bench.targets_met(daemon_results)
    for text, met in met_list + moonraker_bench.targets_met(klipper_result):
        lines.append(f"* {'✅ met' if met else '❌ **not met**'}: {text}")
    return "\n".join(lines)


def render(info, daemon_results, cli_result, klipper_result, quick, loads):
    machine = (
        f"| CPU | {info['cpu']} |\n|---|---|\n| cores | {info['cores']} |\n| memory | {info['memory']} |\n"
        f"| kernel | {info['kernel']} |\n| Python (bench venv) | {info['python']} |\n"
        f"| OctoPrint | {info['octoprint']} with its Virtual Printer, on 127.0.0.1 |\n"
        f"| Klipper | {klipper_result['versions']} on a simulated MCU (KlipperSim), on 127.0.0.1 |\n"
        f"| input devices | {info['input']} |\n| date | {info['date']} |\n"
        f"| load average (1, 5, 15 min) at start / end | {' '.join(loads[0])} / {' '.join(loads[1])} |\n"
        f"| run | `python bench/run.py{' --quick' if quick else ''}` |"
    )
    trials = daemon_results[0]["latency"]["daemon"]["first"]["n"]
    return (
        "\n\n".join(
            [
                "# octopanel benchmark results",
                "Written by `bench/run.py`; see `bench/README.md` for how to run it and what each figure means.",
                "## Machine",
                machine,
                "## Targets",
                verdicts(daemon_results, cli_result, klipper_result),
                "## Figures",
                cli_bench.report(cli_result, ["wall", "breakdown"]),
                f"### Key press → request, both servers ({trials} interleaved presses per sender)",
                daemon_bench.latency_table(daemon_results),
                cli_bench.report(cli_result, ["overhead"]),
                "### Jog-wheel burst: 1,000 detents at 500 Hz",
                daemon_bench.burst_table(daemon_results),
                "### Key press → request on Klipper (Moonraker), beside a bare client",
                moonraker_bench.report(klipper_result),
                cli_bench.report(cli_result, ["idle", "imports_fast", "imports_inproc"]),
                NOTES.replace("\n## Where", moonraker_bench.NOTES + "\n## Where", 1),
            ]
        )
        + "\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and runs, shorter idle period")
    parser.add_argument("--out", default=str(benchenv.HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    venv = benchenv.bench_venv()
    info = benchenv.machine()
    from octopanel.sandbox.virtualprinter import VirtualPrinter

    load_start = loadavg()
    with VirtualPrinter() as vp:
        vp.connect()
        daemon_results = daemon_bench.collect(venv, vp, 100 if args.quick else 400)
        cli_result = cli_bench.collect(venv, vp, args.quick, latency_result=daemon_results[1])
    # After OctoPrint has stopped: the two servers never share the machine's two cores.
    klipper_result = moonraker_bench.run(venv, 100 if args.quick else 400)
    text = render(info, daemon_results, cli_result, klipper_result, args.quick, (load_start, loadavg()))
    Path(args.out).write_text(text)
    print(text)
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
