"""The daemon at rest: an idle `octopanel run`, and its memory, CPU time and wake-ups, read from /proc and strace."""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import benchenv
from benchenv import ROOT

# A daemon as on a Pi where /dev/input exists (so inotify watches it) but no keypad is plugged in: this
# machine has no /dev/input, so DeviceManager is pointed at an empty directory instead.
PI_LIKE = """\
import functools, sys
from octopanel.input import devices
devices.DeviceManager = functools.partial(devices.DeviceManager, watch_dir=sys.argv.pop(1))
from octopanel.cli import main
sys.exit(main(sys.argv[1:], prog="octopanel"))
"""
WAKEUP_SYSCALLS = "epoll_wait,epoll_pwait,select,pselect6,poll,ppoll,futex,clock_nanosleep,nanosleep"


class IdleDaemon:
    """`octopanel run` with the shipped keymap, no replay, and a control socket, straight to OctoPrint."""

    def __init__(self, venv, vp, name, pi_like=False):
        self.home = benchenv.temp_home()
        self.name = name
        self.socket = self.home / "control.sock"
        self.log = open(self.home / "daemon.log", "w+")  # noqa: SIM115 (open for the daemon's life)
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
        threads[int(tid)] = (cpu_ns, int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"threads": threads, "ticks": int(stat[11]) + int(stat[12]), "at": time.monotonic()}


# Blocking syscalls by number, for /proc/PID/task/TID/syscall: name and which argument is the timeout (ms).
SYSCALLS = {
    "x86_64": {
        232: ("epoll_wait", 3),
        281: ("epoll_pwait", 3),
        202: ("futex", None),
        7: ("poll", 2),
        23: ("select", None),
        270: ("pselect6", None),
        271: ("ppoll", None),
        0: ("read", None),
    },
    "aarch64": {
        22: ("epoll_pwait", 3),
        98: ("futex", None),
        72: ("pselect6", None),
        73: ("ppoll", None),
        63: ("read", None),
    },
}


def blocked_in(pid):
    """What each thread is blocked in right now, from /proc (no tracer): {'main': 'epoll_wait, timeout 2000 ms'}."""
    table = SYSCALLS.get(os.uname().machine, {})
    out = {}
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()
        except OSError:
            continue
        if not fields or not fields[0].isdigit():
            out[tid] = "running"
            continue
        name, arg = table.get(int(fields[0]), (f"syscall {fields[0]}", None))
        text = name
        if arg is not None:
            timeout = int(fields[1 + arg], 16)
            timeout = timeout - (1 << 64) if timeout >= 1 << 63 else timeout
            text += f", timeout {timeout} ms" if timeout >= 0 else ", no timeout"
        elif name == "futex":
            text += ", no timeout" if fields[4] == "0x0" else ", with a timeout"
        out["main" if int(tid) == pid else f"thread {tid}"] = text
    return out


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
                "cpu_ms": (cpu - cpu0) / 1e6,
                "wakeups": vol - vol0,
                "preempted": invol - invol0,
            }
        status = proc_status(d.proc.pid)
        out[d.name] = {
            "blocked": blocked_in(d.proc.pid),
            "seconds": span,
            "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "hwm_mb": int(status["VmHWM"].split()[0]) / 1024,
            "cpu_ticks_ms": (after["ticks"] - b["ticks"]) * 1000 / os.sysconf("SC_CLK_TCK"),
            "threads": threads,
        }
    return out


def trace_wakeups(daemons, seconds):
    """strace -f each daemon for `seconds`: which thread returns from which blocking call, with what timeout."""
    if shutil.which("strace") is None:
        return {d.name: "strace not installed (apt-get install strace)" for d in daemons}
    files = {d.name: d.home / "strace.txt" for d in daemons}
    tracers = [
        subprocess.Popen(
            ["strace", "-f", "-qq", "-e", f"trace={WAKEUP_SYSCALLS}", "-o", str(files[d.name]), "-p", str(d.proc.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for d in daemons
    ]
    time.sleep(seconds)
    for tracer in tracers:
        tracer.terminate()
        tracer.wait(10)
    out = {}
    for d in daemons:
        calls, blocked = {}, {}
        for line in files[d.name].read_text(errors="replace").splitlines():
            match = re.match(r"(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)", line)
            if not match:
                continue
            tid, resumed, started, rest = match.groups()
            name = resumed or started
            who = "main" if int(tid) == d.proc.pid else f"thread {tid}"
            found = re.search(r"(-?\d+)(?:\)\s*=|\s*<unfinished|\s*<detached)", rest)
            timeout = found.group(1) if found and name.startswith("epoll") else ""
            if started:
                blocked[who] = (name, timeout)
            else:
                timeout = timeout or blocked.get(who, ("", ""))[1]
            if "<unfinished" in rest or "<detached" in rest or "= " not in rest:
                continue  # a wake-up is counted when the call returns
            blocked.pop(who, None)
            calls[(who, name, timeout)] = calls.get((who, name, timeout), 0) + 1
        out[d.name] = {"seconds": seconds, "calls": calls, "blocked": blocked}
    return out


def idle_table(result):
    lines = [
        (
            "| daemon | RSS (peak) | CPU over the idle period (schedstat; utime+stime) | wake-ups (voluntary "
            "context switches), per thread | blocked in, at the end (/proc/PID/task/*/syscall) "
            "| under strace: returns from blocking calls |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["idle"].items():
        cpu = sum(t["cpu_ms"] for t in r["threads"].values())
        wakes = ", ".join(f"{who}: {t['wakeups']}" for who, t in sorted(r["threads"].items()))
        trace = result["trace"][name]
        if isinstance(trace, str):
            traced = trace
        else:
            traced = (
                ", ".join(
                    f"{who} {call}{f' (timeout {tmo} ms)' if tmo else ''} ×{n}"
                    for (who, call, tmo), n in sorted(trace["calls"].items())
                )
                or "none"
            )
            traced += f" in {trace['seconds']} s"
        blocked = ", ".join(f"{who}: {what}" for who, what in r["blocked"].items())
        lines.append(
            f"| {name} | {r['rss_mb']:.1f} MB ({r['hwm_mb']:.1f} MB) | {cpu:.1f} ms; {r['cpu_ticks_ms']:.0f} ms "
            f"in {r['seconds']:.0f} s | {wakes} | {blocked} | {traced} |"
        )
    return "\n".join(lines)
