"""Panel daemon benchmark: key press → HTTP request latency, and a 1,000-detent jog-wheel burst.

Run: python bench/daemon.py [--quick] [--trials N]. Measures against (a) tests/stubserver.py and (b) a real
OctoPrint 1.11.8 with its Virtual Printer, each behind a timing server (bench/timing.py) in a child
process that stamps every request on CLOCK_MONOTONIC. See bench/README.md for what each figure means.
"""

import argparse
import datetime
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import benchenv
from benchenv import median, ms, pct
from burst import burst
from flavours import OCTOPRINT
from timing import Recorder

FMT = "llHHi"  # native struct input_event
EV_SYN, EV_KEY, EV_REL = 0, 1, 2
SYN_REPORT, KEY_KP8, KEY_KP2, REL_DIAL = 0, 72, 80, 7
KEYMAP = """\
feedback: {beep: false, message: false, leds: "off"}
settings: {max_outstanding_mm: 1000}
keys:
  KEY_KP8: {press: "jog y=0.1"}
  KEY_KP2: {press: "jog y=-0.1"}
rotary:
  REL_DIAL: "jog z=0.1"
"""
WARMUP = 10
GAP_S = (0.02, 0.04)  # idle time between trials, random so that nothing periodic locks onto them
KINDS = ("daemon", "bare", "curl")


def event(type_, code, value):
    now = time.monotonic()
    sec = int(now)
    return struct.pack(FMT, sec, int((now - sec) * 1e6), type_, code, value)


class PanelDaemon:
    """`octopanel run --replay FIFO --live` from the bench venv, and the FIFO's write end: a keypad."""

    def __init__(self, venv, url, api_key, workdir, keymap=KEYMAP, **env_extra):
        self.workdir = Path(workdir)
        self.fifo = self.workdir / "keys.fifo"
        os.mkfifo(self.fifo)
        (self.workdir / "keymap.yaml").write_text(keymap)
        self.log = open(self.workdir / "daemon.log", "w+")  # noqa: SIM115 (open for the daemon's life)
        # env_extra: e.g. OCTOPANEL_BACKEND="moonraker"; a None value (api_key too) is left out.
        env = benchenv.clean_env(self.workdir, OCTOPRINT_URL=url, OCTOPRINT_API_KEY=api_key, **env_extra)
        # --live: the loop reads the FIFO itself, as it reads a keypad's event node. A plain replay would put
        # a pacing thread between the two, which a real keypad does not have.
        self.proc = subprocess.Popen(
            [
                str(venv / "bin" / "octopanel"),
                "run",
                "--replay",
                str(self.fifo),
                "--live",
                "--keymap",
                str(self.workdir / "keymap.yaml"),
                "--no-control",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.fd = self._open_writer()

    def _open_writer(self):
        deadline = time.monotonic() + 30
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until the daemon reads it
                os.set_blocking(fd, True)
                return fd
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon did not open its replay FIFO:\n{self.output()}") from None
                time.sleep(0.01)

    def write(self, data):
        """Write records; returns the time.monotonic() just before the write."""
        t0 = time.monotonic()
        os.write(self.fd, data)
        return t0

    def key(self, code, value):
        return self.write(event(EV_KEY, code, value) + event(EV_SYN, SYN_REPORT, 0))

    def dial(self, steps, code=REL_DIAL):
        return self.write(event(EV_REL, code, steps) + event(EV_SYN, SYN_REPORT, 0))

    def output(self):
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def close(self):
        """Stop the daemon: with --live a closed writer is an unplug, not an end, so it gets SIGTERM."""
        os.close(self.fd)
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


# -- key press → request latency ---------------------------------------------------------------------------------


def g0_logged_at(serial_log, mark, y, timeout=0.5):
    """Wall time at which serial.log shows the `G0 Y<y>` sent after byte offset mark (1 ms resolution)."""
    pattern = re.compile(rf"^(\S+ \S+) - Send: (?:N\d+ )?G0 Y{re.escape(y)}\b", re.MULTILINE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(serial_log, "rb") as f:
            f.seek(mark)
            match = pattern.search(f.read().decode(errors="replace"))
        if match:
            return datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        time.sleep(0.003)
    return None


def press(recorder, daemon, sign, flavour=OCTOPRINT):
    """One key press on the daemon's FIFO: t0, the first request it sent and its jog request."""
    code = KEY_KP8 if sign > 0 else KEY_KP2
    t0 = daemon.key(code, 1)
    first = recorder.wait_for(lambda r: True)
    jog = first if flavour.is_jog(first) else recorder.wait_for(flavour.is_jog)
    daemon.key(code, 0)
    return t0, first, jog


def trial(kind, recorder, daemon, session, api_key, sign, flavour=OCTOPRINT):
    """One key press (or its bare equivalent): t0 and {measure: seconds from t0 to the server's stamps}."""
    y = "0.1" if sign > 0 else "-0.1"
    recorder.drain()
    if kind == "daemon":
        t0, first, jog = press(recorder, daemon, sign, flavour)
        return t0, {"first": first["t"] - t0, "jog": jog["t"] - t0, "done": jog["done"] - t0}
    if kind == "bare":
        t0 = time.monotonic()
        session.post(recorder.url + flavour.path, json=flavour.body("y", y), timeout=5)
    else:  # one curl per key press through /bin/sh -c, as actkbd's system() runs a command
        body = json.dumps(flavour.body("y", y))
        key = f"-H 'X-Api-Key: {api_key}' " if api_key else ""
        command = f"curl -s {key}-H 'Content-Type: application/json' -X POST -d '{body}' {recorder.url}{flavour.path}"
        t0 = time.monotonic()
        subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.DEVNULL, check=False)
    jog = recorder.wait_for(flavour.is_jog)
    return t0, {"first": jog["t"] - t0, "jog": jog["t"] - t0, "done": jog["done"] - t0}


def latency(recorder, daemon, api_key, trials, kinds=KINDS, serial_log=None, seed=1, flavour=OCTOPRINT):
    """Interleaved trials of each kind; returns {kind: {measure: [seconds]}} (+ "serial" to serial.log)."""
    from octopanel.printers.httpclient import environment_session

    rng = random.Random(seed)
    # Set up as the daemon's own session (environment read once, not per request): what is compared is the
    # daemon's path, not a requests setting worth ~0.1 ms a request.
    session = environment_session(recorder.url)
    if api_key:
        session.headers["X-Api-Key"] = api_key
    if flavour.learns:  # one press each way first: the bare senders then send the daemon's own jog
        for sign, y in ((1, "0.1"), (-1, "-0.1")):
            recorder.drain()
            flavour.learn("y", y, press(recorder, daemon, sign, flavour)[2]["b"])
            time.sleep(GAP_S[1])
    out = {kind: {"first": [], "jog": [], "done": [], "serial": []} for kind in kinds}
    count = 0
    for i in range(WARMUP + trials):
        order = list(kinds)
        rng.shuffle(order)
        for kind in order:
            sign = 1 if count % 2 == 0 else -1  # alternate, so that the head stays put and log lines differ
            count += 1
            mark = os.path.getsize(serial_log) if serial_log else None
            offset = time.time() - time.monotonic()  # wall clock minus monotonic, for serial.log's stamps
            t0, result = trial(kind, recorder, daemon, session, api_key, sign, flavour)
            if serial_log:
                logged = g0_logged_at(serial_log, mark, "0.1" if sign > 0 else "-0.1")
                result["serial"] = None if logged is None else logged - (t0 + offset)
            if i >= WARMUP:
                for measure, value in result.items():
                    if value is not None:
                        out[kind][measure].append(value)
            time.sleep(rng.uniform(*GAP_S))
    session.close()
    return out


def summarize_latency(raw):
    """p50/p99 of each kind, and the daemon's added latency over the bare client."""
    s = {
        kind: {m: {"p50": median(v), "p90": pct(v, 90), "p99": pct(v, 99), "n": len(v)} for m, v in measures.items()}
        for kind, measures in raw.items()
    }
    if "daemon" in s and "bare" in s:
        bare = s["bare"]["first"]
        s["added"] = {
            m: {"p50": s["daemon"][m]["p50"] - bare["p50"], "p99": s["daemon"][m]["p99"] - bare["p99"]}
            for m in ("first", "jog")
        }
    return s


# -- one target, and the whole run --------------------------------------------------------------------------------


def run_target(venv, name, trials, kinds=KINDS, vp=None, detents=1000):
    """Latency and burst against the stub (vp None) or the VirtualPrinter's OctoPrint through a timing proxy."""
    workdir = benchenv.temp_home()
    recorder = Recorder("stub") if vp is None else Recorder("proxy", vp.url.split("//", 1)[1])
    api_key = vp.api_key if vp is not None else "stub-key"
    daemon = None
    try:
        daemon = PanelDaemon(venv, recorder.url, api_key, workdir)
        print(
            f"bench: {name}: {trials} key presses per kind ({', '.join(kinds)}), interleaved…",
            file=sys.stderr,
            flush=True,
        )
        raw = latency(recorder, daemon, api_key, trials, kinds, serial_log=vp.serial_log if vp else None)
        time.sleep(0.3)
        print(f"bench: {name}: {detents}-detent burst…", file=sys.stderr, flush=True)
        jog_burst = burst(recorder, daemon, detents=detents, vp=vp)
        code = daemon.close()
        daemon = None
        if code != 0:
            raise RuntimeError(f"the daemon exited with {code}")
        return {"target": name, "latency": summarize_latency(raw), "burst": jog_burst}
    finally:
        if daemon is not None:
            daemon.proc.kill()
            daemon.proc.wait()
        recorder.close()
        shutil.rmtree(workdir, ignore_errors=True)


def collect(venv, vp, trials, kinds=KINDS):
    """Both targets: the stub, then the real OctoPrint (vp connected)."""
    return [run_target(venv, "stub server", trials, kinds), run_target(venv, "OctoPrint 1.11.8", trials, kinds, vp)]


# -- tables -----------------------------------------------------------------------------------------------------

LABELS = {
    "daemon": "daemon (key press on FIFO)",
    "bare": "bare keep-alive requests.Session",
    "curl": "`sh -c curl` per press (actkbd style)",
}


def latency_table(results):
    lines = [
        (
            "| server | sender | to first request p50 / p99 (ms) | to jog request p50 / p99 (ms) "
            "| jog answered p50 (ms) | key → G0 in serial.log p50 / p99 (ms) |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        lat = res["latency"]
        for kind in (k for k in KINDS if k in lat):
            m = lat[kind]
            serial = m["serial"]
            serial_text = f"{ms(serial['p50'], 1)} / {ms(serial['p99'], 1)}" if serial["n"] else "–"
            lines.append(
                f"| {res['target']} | {LABELS[kind]} | {ms(m['first']['p50'])} / {ms(m['first']['p99'])} "
                f"| {ms(m['jog']['p50'])} / {ms(m['jog']['p99'])} | {ms(m['done']['p50'])} | {serial_text} |"
            )
        if "added" in lat:
            a = lat["added"]
            lines.append(
                f"| {res['target']} | **daemon − bare** | **{ms(a['first']['p50'])} / {ms(a['first']['p99'])}** "
                f"| {ms(a['jog']['p50'])} / {ms(a['jog']['p99'])} | | |"
            )
    return "\n".join(lines)


def burst_table(results):
    lines = [
        (
            "| server | detents (rate) | jog requests (+ other) | received / expected (mm) | error (mm) "
            "| last detent → last jog arrives / answered (ms) | serial.log G0 moves, total (mm) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        b = res["burst"]
        serial = f"{b['serial_moves']}, {b['serial_mm']}" if "serial_mm" in b else "–"
        lines.append(
            f"| {res['target']} | {b['detents']} ({b['rate_hz']:.0f} Hz) | {b['jog_requests']} "
            f"(+{b['other_requests']}) | {b['received_mm']} / {b['expected_mm']} | {b['error_mm']} "
            f"| {ms(b['lag_arrival'], 1)} / {ms(b['lag_done'], 1)} | {serial} |"
        )
    return "\n".join(lines)


def targets_met(results):
    """(text, met) for the ≤ 0.5 ms p99 added latency to the first request and the exact burst."""
    out = []
    for res in results:
        added = res["latency"].get("added")
        if added:
            p99 = added["first"]["p99"]
            out.append((f"{res['target']}: added p99 to the first request {ms(p99)} ms (target ≤ 0.50)", p99 <= 0.5e-3))
        b = res["burst"]
        exact = b["error_mm"] == 0 and b.get("serial_error_mm", 0) == 0
        out.append((f"{res['target']}: burst distance error {b['error_mm']} mm (target exactly 0)", exact))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 trials instead of 400")
    parser.add_argument("--trials", type=int, default=None)
    args = parser.parse_args(argv)
    trials = args.trials or (100 if args.quick else 400)
    venv = benchenv.bench_venv()
    from octopanel.sandbox.virtualprinter import VirtualPrinter

    with VirtualPrinter() as vp:
        vp.connect()
        results = collect(venv, vp, trials, kinds=("daemon", "bare"))
    print(latency_table(results), "", burst_table(results), "", sep="\n")
    for text, met in targets_met(results):
        print(f"{'met    ' if met else 'NOT MET'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
