"""Speed benchmark: 8status and 8jog through the daemon, in-process and as bash+curl; the daemon idle; import time.

Run: python bench/cli.py [--quick]. Everything is measured side by side in one run against a real OctoPrint
1.11.8 with its Virtual Printer, using the 8xxx scripts of a non-editable bench venv. It also runs the
key-press latency and jog-burst measurements of bench/daemon.py against that OctoPrint. See bench/README.md.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import benchenv
import daemon as daemon_bench
from benchenv import HERE, ROOT, median, ms

# A daemon as on a Pi where /dev/input exists (so inotify watches it) but no keypad is plugged in: this
# machine has no /dev/input, so DeviceManager is pointed at an empty directory instead.
PI_LIKE = """\
import functools, sys
from octopanel import devices
devices.DeviceManager = functools.partial(devices.DeviceManager, watch_dir=sys.argv.pop(1))
from octopanel.cli import main
sys.exit(main(sys.argv[1:], prog="octopanel"))
"""
FORBIDDEN_ON_FAST_PATH = ("requests", "urllib3", "yaml", "evdev", "asyncio", "systemd", "octopanel.client",
                          "octopanel.actions", "octopanel.config")
WAKEUP_SYSCALLS = "epoll_wait,epoll_pwait,select,pselect6,poll,ppoll,futex,clock_nanosleep,nanosleep"


class IdleDaemon:
    """`octopanel run` with the shipped keymap, no replay, and a control socket, straight to OctoPrint."""

    def __init__(self, venv, vp, name, pi_like=False):
        self.home = benchenv.temp_home()
        self.name = name
        self.socket = self.home / "control.sock"
        self.log = open(self.home / "daemon.log", "w+")
        args = ["run", "--keymap", str(ROOT / "etc" / "keymap.yaml"), "--control", str(self.socket)]
        if pi_like:
            watch = self.home / "input"
            watch.mkdir()
            argv = [str(venv / "bin" / "python"), "-c", PI_LIKE, str(watch), *args]
        else:
            argv = [str(venv / "bin" / "octopanel"), *args]
        env = benchenv.clean_env(self.home, OCTOPRINT_URL=vp.url, OCTOPRINT_API_KEY=vp.api_key)
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the daemon did not start:\n{self.output()}")
            time.sleep(0.02)

    def _answers(self):
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(self.socket))
            return True
        except OSError:
            return False

    def output(self):
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


# -- wall time of the commands ------------------------------------------------------------------------------------

def variants(venv, vp, daemon_socket, homes):
    """name -> (argv builder(sign), env): every way of running 8status and 8jog that is timed."""
    direct = dict(OCTOPRINT_URL=vp.url, OCTOPRINT_API_KEY=vp.api_key)
    env_daemon = benchenv.clean_env(homes["empty"], OCTOPANEL_SOCKET=daemon_socket)
    env_inproc = benchenv.clean_env(homes["empty"], OCTOPANEL_NO_DAEMON=1, **direct)
    env_bash = benchenv.clean_env(homes["empty"], **direct)
    env_octocmd = benchenv.clean_env(homes["octocmd"])
    bin_ = venv / "bin"
    jog = lambda s: ["0", "0.1" if s > 0 else "-0.1", "0"]  # noqa: E731
    return {
        ("8status", "daemon"): (lambda s: [str(bin_ / "8status")], env_daemon),
        ("8status", "in-process"): (lambda s: [str(bin_ / "8status")], env_inproc),
        ("8status", "bash"): (lambda s: [str(HERE / "8status.sh")], env_bash),
        ("8status", "bash-octocmd"): (lambda s: [str(HERE / "8status.sh")], env_octocmd),
        ("8jog", "daemon"): (lambda s: [str(bin_ / "8jog"), *jog(s)], env_daemon),
        ("8jog", "in-process"): (lambda s: [str(bin_ / "8jog"), *jog(s)], env_inproc),
        ("8jog", "bash"): (lambda s: [str(HERE / "8jog.sh"), *jog(s)], env_bash),
        ("8jog", "bash-octocmd"): (lambda s: [str(HERE / "8jog.sh"), *jog(s)], env_octocmd),
        ("answer", "8status"): (lambda s: ["status"], None),
        ("answer", "8jog"): (lambda s: ["jog", *jog(s)], None),
        ("floor", "python -c pass"): (lambda s: [str(bin_ / "python"), "-c", "pass"], env_bash),
        ("floor", "curl alone"): (lambda s: ["curl", "-s", "-o", "/dev/null", "-H", f"X-Api-Key: {vp.api_key}",
                                             f"{vp.url}/api/connection"], env_bash),
    }


def ask_daemon(path, argv):
    """One fast-path exchange on the control socket from this (warm) process: the daemon's part of 8xxx."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(json.dumps({"argv": argv}).encode() + b"\n")
        reply = json.loads(sock.makefile("rb").readline())
    return subprocess.CompletedProcess(argv, 0 if reply.get("ok") else 1, reply.get("message", ""), str(reply))


def check_output(key, done):
    """The first run of each variant must have worked, or its time means nothing."""
    command, how = key if key[0] != "answer" else (key[1], "daemon answer")
    ok = done.returncode == 0 and (command != "8status" or "Operational" in done.stdout) and \
        (command != "8jog" or how.startswith("bash") or "jogged" in done.stdout)
    if not ok:
        raise RuntimeError(f"{command} ({how}) failed with {done.returncode}:\n{done.stdout}{done.stderr}")


def wall_times(venv, vp, daemon_socket, runs, seed=2):
    """Median wall time of each variant over `runs` runs, interleaved in a random order each round."""
    homes = {"empty": benchenv.temp_home(), "octocmd": benchenv.temp_home()}
    (homes["octocmd"] / ".octocmd.conf").write_text(
        f'{{\n    "OctoAPI_KEY": "{vp.api_key}",\n    "OctoPrint_URL": "{vp.url}"\n}}\n')
    table = variants(venv, vp, daemon_socket, homes)
    times = {key: [] for key in table}
    rng = random.Random(seed)
    try:
        for i in range(runs + 1):  # round 0 warms the page cache and checks the outputs
            order = list(table)
            rng.shuffle(order)
            for key in order:
                argv, env = table[key]
                sign = 1 if i % 2 == 0 else -1
                t0 = time.perf_counter()
                if key[0] == "answer":
                    done = ask_daemon(daemon_socket, argv(sign))
                else:
                    done = subprocess.run(argv(sign), env=env, capture_output=True, text=True, timeout=60)
                elapsed = time.perf_counter() - t0
                if i == 0:
                    check_output(key, done)
                else:
                    times[key].append(elapsed)
                time.sleep(0.01)
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    return {key: median(values) for key, values in times.items()} | {"runs": runs}


# -- import time of the fast path ---------------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


def import_times(venv, env, runs=7):
    """python -X importtime 8status: the run with the median total; top-level imports and every module seen."""
    samples = []
    for _ in range(runs):
        done = subprocess.run([str(venv / "bin" / "python"), "-X", "importtime", str(venv / "bin" / "8status")],
                              env=env, capture_output=True, text=True, timeout=60)
        top, modules = [], set()
        for line in done.stderr.splitlines():
            match = IMPORT_LINE.match(line)
            if match:
                modules.add(match.group(4))
                if not match.group(3):
                    top.append((int(match.group(2)) / 1e6, match.group(4)))
        samples.append((sum(t for t, _ in top), sorted(top, reverse=True), modules, done.returncode))
    samples.sort(key=lambda s: s[0])
    total, top, modules, code = samples[len(samples) // 2]
    forbidden = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN_ON_FAST_PATH or
                       any(m == f or m.startswith(f + ".") for f in FORBIDDEN_ON_FAST_PATH))
    return {"total": total, "top": top[:12], "count": len(modules), "forbidden": forbidden, "exit": code}


# -- the daemon at rest -------------------------------------------------------------------------------------------

def proc_status(pid, tid=None):
    path = f"/proc/{pid}/status" if tid is None else f"/proc/{pid}/task/{tid}/status"
    fields = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def snapshot(pid):
    """Per-thread CPU (ns, schedstat) and context switches, and the process's utime+stime (ticks)."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            cpu_ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            status = proc_status(pid, tid)
        except (OSError, ValueError):
            continue
        threads[int(tid)] = (cpu_ns, int(status["voluntary_ctxt_switches"]),
                             int(status["nonvoluntary_ctxt_switches"]))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"threads": threads, "ticks": int(stat[11]) + int(stat[12]), "at": time.monotonic()}


def idle(daemons, seconds):
    """RSS, CPU time and wake-ups of each daemon over the same `seconds` of doing nothing."""
    before = {d.name: snapshot(d.proc.pid) for d in daemons}
    time.sleep(seconds)
    out = {}
    for d in daemons:
        after = snapshot(d.proc.pid)
        b = before[d.name]
        span = after["at"] - b["at"]
        threads = {}
        for tid, (cpu, vol, invol) in after["threads"].items():
            cpu0, vol0, invol0 = b["threads"].get(tid, (0, 0, 0))
            threads["main" if tid == d.proc.pid else f"thread {tid}"] = {
                "cpu_ms": (cpu - cpu0) / 1e6, "wakeups": vol - vol0, "preempted": invol - invol0}
        status = proc_status(d.proc.pid)
        out[d.name] = {"seconds": span, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
                       "hwm_mb": int(status["VmHWM"].split()[0]) / 1024,
                       "cpu_ticks_ms": (after["ticks"] - b["ticks"]) * 1000 / os.sysconf("SC_CLK_TCK"),
                       "threads": threads}
    return out


def trace_wakeups(daemons, seconds):
    """strace -f each daemon for `seconds`: which thread returns from which blocking call, with what timeout."""
    if shutil.which("strace") is None:
        return {d.name: "strace not installed (apt-get install strace)" for d in daemons}
    files = {d.name: d.home / "strace.txt" for d in daemons}
    tracers = [subprocess.Popen(["strace", "-f", "-qq", "-e", f"trace={WAKEUP_SYSCALLS}", "-o", str(files[d.name]),
                                 "-p", str(d.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for d in daemons]
    time.sleep(seconds)
    for tracer in tracers:
        tracer.terminate()
        tracer.wait(10)
    out = {}
    for d in daemons:
        calls, timeouts = {}, {}
        for line in files[d.name].read_text(errors="replace").splitlines():
            match = re.match(r"(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)", line)
            if not match:
                continue
            tid, resumed, started, rest = match.groups()
            name = resumed or started
            if started and name.startswith("epoll"):
                found = re.search(r"(-?\d+)(?:\)\s*=|\s*<unfinished)", rest)
                timeouts[tid] = found.group(1) if found else "?"
            if "<unfinished" in rest or "<detached" in rest or "= " not in rest:
                continue  # not returned (yet): a wake-up is counted when the call returns
            who = "main" if int(tid) == d.proc.pid else f"thread {tid}"
            key = (who, name, timeouts.get(tid, "") if name.startswith("epoll") else "")
            calls[key] = calls.get(key, 0) + 1
        out[d.name] = {"seconds": seconds, "calls": calls}
    return out


# -- the whole benchmark ------------------------------------------------------------------------------------------

def collect(venv, vp, quick=False, latency_result=None):
    """Every figure of this benchmark; latency_result reuses bench/daemon.py's OctoPrint run if given."""
    runs = 20 if quick else 40
    idle_s, trace_s = (10, 5) if quick else (30, 10)
    result = {"runs": runs}
    here = IdleDaemon(venv, vp, "as here (no /dev/input)")
    pi = IdleDaemon(venv, vp, "Pi-like (/dev/input watched)", pi_like=True)
    try:
        env_fast = benchenv.clean_env(here.home / "nohome", OCTOPANEL_SOCKET=here.socket)
        env_inproc = benchenv.clean_env(here.home / "nohome", OCTOPANEL_NO_DAEMON=1, OCTOPRINT_URL=vp.url,
                                        OCTOPRINT_API_KEY=vp.api_key)
        print(f"bench: 8status/8jog: {runs} interleaved runs of each way…", file=sys.stderr, flush=True)
        result["wall"] = wall_times(venv, vp, here.socket, runs)
        print("bench: -X importtime…", file=sys.stderr, flush=True)
        result["imports_fast"] = import_times(venv, env_fast)
        result["imports_inproc"] = import_times(venv, env_inproc)
        time.sleep(1.0)
        print(f"bench: both daemons idle for {idle_s} s, then {trace_s} s under strace…", file=sys.stderr, flush=True)
        result["idle"] = idle([here, pi], idle_s)
        result["trace"] = trace_wakeups([here, pi], trace_s)
    finally:
        here.close()
        pi.close()
    if latency_result is None:
        latency_result = daemon_bench.run_target(venv, "OctoPrint 1.11.8", 100 if quick else 400, vp=vp)
    result["octoprint"] = latency_result
    return result


# -- tables -------------------------------------------------------------------------------------------------------

def ratio(a, b):
    return a / b if b else float("nan")


def wall_table(wall):
    lines = [f"| command | through the daemon | in-process | bash+curl | bash+curl, 8control config "
             f"| daemon ÷ bash | in-process ÷ bash |", "|---|---|---|---|---|---|---|"]
    for command in ("8status", "8jog"):
        d, i, b, o = (wall[(command, how)] for how in ("daemon", "in-process", "bash", "bash-octocmd"))
        lines.append(f"| `{command}` | {ms(d, 1)} ms | {ms(i, 1)} ms | {ms(b, 1)} ms | {ms(o, 1)} ms "
                     f"| **{ratio(d, b):.2f}×** | **{ratio(i, b):.2f}×** |")
    lines.append(f"| floor | `python -c pass`: {ms(wall[('floor', 'python -c pass')], 1)} ms | | "
                 f"`curl` alone: {ms(wall[('floor', 'curl alone')], 1)} ms | | | |")
    return "\n".join(lines)


def breakdown_table(result):
    """Where the fast path's time goes: interpreter start, imports, the daemon's answer, the rest."""
    wall = result["wall"]
    start = wall[("floor", "python -c pass")]
    imports = result["imports_fast"]["total"]
    lines = ["| through the daemon | wall time | = `python -c pass` | + fast-path imports (-X importtime) "
             "| + the daemon's answer (from a warm client) | + the rest (exit, output) |", "|---|---|---|---|---|---|"]
    for command in ("8status", "8jog"):
        total, answer = wall[(command, "daemon")], wall[("answer", command)]
        lines.append(f"| `{command}` | {ms(total, 1)} ms | {ms(start, 1)} ms | {ms(imports, 1)} ms | {ms(answer, 1)} ms "
                     f"| {ms(total - start - imports - answer, 1)} ms |")
    return "\n".join(lines)


def overhead_table(octoprint):
    lat = octoprint["latency"]
    bare = lat["bare"]["first"]
    lines = ["| sender | to first request p50 / p90 / p99 (ms) | minus bare p50 / p99 (ms) | ÷ bare (p50) |",
             "|---|---|---|---|"]
    rows = [("daemon, key press → first request (GET /api/printer)", lat["daemon"]["first"]),
            ("daemon, key press → jog request (POST …/printhead)", lat["daemon"]["jog"]),
            ("bare keep-alive requests.Session, jog", bare)]
    if "curl" in lat:
        rows.append(("`sh -c curl` spawned per key press (actkbd style), jog", lat["curl"]["first"]))
    for label, m in rows:
        lines.append(f"| {label} | {ms(m['p50'])} / {ms(m['p90'])} / {ms(m['p99'])} | {ms(m['p50'] - bare['p50'])} / "
                     f"{ms(m['p99'] - bare['p99'])} | {ratio(m['p50'], bare['p50']):.2f}× |")
    return "\n".join(lines)


def idle_table(result):
    lines = ["| daemon | RSS (peak) | CPU over the idle period (schedstat; utime+stime) | wake-ups (voluntary "
             "context switches), per thread | under strace: returns from blocking calls |", "|---|---|---|---|---|"]
    for name, r in result["idle"].items():
        cpu = sum(t["cpu_ms"] for t in r["threads"].values())
        wakes = ", ".join(f"{who}: {t['wakeups']}" for who, t in sorted(r["threads"].items()))
        trace = result["trace"][name]
        if isinstance(trace, str):
            traced = trace
        else:
            traced = ", ".join(f"{who} {call}{f' (timeout {tmo} ms)' if tmo else ''} ×{n}"
                               for (who, call, tmo), n in sorted(trace["calls"].items())) or "none"
            traced += f" in {trace['seconds']} s"
        lines.append(f"| {name} | {r['rss_mb']:.1f} MB ({r['hwm_mb']:.1f} MB) | {cpu:.1f} ms; {r['cpu_ticks_ms']:.0f} ms "
                     f"in {r['seconds']:.0f} s | {wakes} | {traced} |")
    return "\n".join(lines)


def imports_table(imports):
    lines = [f"total {imports['total'] * 1e3:.1f} ms for {imports['count']} modules (the median of 7 runs); "
             f"requests, urllib3, yaml, evdev, asyncio, systemd or octopanel.client/actions/config imported: "
             f"{', '.join(imports['forbidden']) or 'none'}", "",
             "| top-level import | cumulative (ms) |", "|---|---|"]
    lines += [f"| `{name}` | {t * 1e3:.2f} |" for t, name in imports["top"]]
    return "\n".join(lines)


def targets_met(result):
    wall = result["wall"]
    out = []
    for command in ("8status", "8jog"):
        b = wall[(command, "bash")]
        r = ratio(wall[(command, "daemon")], b)
        out.append((f"`{command}` through the daemon {r:.2f}× bash+curl (target ≤ 1.2×)", r <= 1.2))
        r = ratio(wall[(command, "in-process")], b)
        out.append((f"`{command}` in-process {r:.2f}× bash+curl (target ≤ 6×)", r <= 6))
    for name, r in result["idle"].items():
        out.append((f"{name}: RSS {r['rss_mb']:.1f} MB (target ≤ 35 MB)", r["rss_mb"] <= 35))
        wakes = sum(t["wakeups"] for t in r["threads"].values())
        out.append((f"{name}: {wakes} wake-ups in {r['seconds']:.0f} s idle (target: none besides the watchdog, "
                    f"which is off here)", wakes <= 1))
    forbidden = result["imports_fast"]["forbidden"]
    out.append((f"fast path imports none of requests/yaml/evdev: {', '.join(forbidden) or 'none imported'}",
                not forbidden))
    return out


def sections(result):
    """name -> (title, body) of every table this benchmark prints."""
    return {
        "wall": (f"8status and 8jog wall time (median of {result['wall']['runs']} interleaved runs each)",
                 wall_table(result["wall"])),
        "breakdown": ("Where the fast path's time goes (medians of the same run)", breakdown_table(result)),
        "overhead": ("Key press → request against OctoPrint: the daemon vs a bare client vs curl per key press",
                     overhead_table(result["octoprint"])),
        "burst": ("Jog-wheel burst against OctoPrint: 1,000 detents at 500 Hz",
                  daemon_bench.burst_table([result["octoprint"]])),
        "idle": ("The daemon at rest", idle_table(result)),
        "imports_fast": ("`python -X importtime 8status` through the daemon (the fast path)",
                         imports_table(result["imports_fast"])),
        "imports_inproc": ("The same without the daemon (in-process), for comparison",
                           imports_table(result["imports_inproc"])),
    }


def report(result, names=None):
    parts = sections(result)
    return "\n\n".join(f"### {parts[n][0]}\n\n{parts[n][1]}" for n in (names or parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter idle period")
    args = parser.parse_args(argv)
    venv = benchenv.bench_venv()
    from octopanel.virtualprinter import VirtualPrinter

    with VirtualPrinter() as vp:
        vp.connect()
        result = collect(venv, vp, args.quick)
    print(report(result), "", sep="\n")
    for text, met in targets_met(result) + daemon_bench.targets_met([result["octoprint"]]):
        print(f"{'met    ' if met else 'NOT MET'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
