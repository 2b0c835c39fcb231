"""Speed benchmark: 8status and 8jog through the daemon, in-process and as bash+curl; the daemon idle; import time.

Run: python bench/cli.py [--quick]. Everything is measured side by side in one run against a real OctoPrint
1.11.8 with its Virtual Printer, using the 8xxx scripts of a non-editable bench venv. It also runs the
key-press latency and jog-burst measurements of bench/daemon.py against that OctoPrint. See bench/README.md.
"""

import argparse
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import time

import benchenv
import daemon as daemon_bench
from benchenv import HERE, median, ms
from idle import IdleDaemon, idle, idle_table, trace_wakeups

FORBIDDEN_ON_FAST_PATH = (
    "requests",
    "urllib3",
    "yaml",
    "evdev",
    "asyncio",
    "systemd",
    "octopanel.printers.octoprint.client",
    "octopanel.actions",
    "octopanel.settings",
)


# -- wall time of the commands ------------------------------------------------------------------------------------


def variants(venv, vp, daemon_socket, homes, session):
    """name -> run(sign) returning a CompletedProcess: every way of running 8status and 8jog that is timed."""
    direct = {"OCTOPRINT_URL": vp.url, "OCTOPRINT_API_KEY": vp.api_key}
    # The daemon's URL (the fast path is taken only for the daemon's own settings) but no key: a success
    # proves the daemon ran it.
    env_daemon = benchenv.clean_env(homes["empty"], OCTOPANEL_SOCKET=daemon_socket, OCTOPRINT_URL=vp.url)
    env_inproc = benchenv.clean_env(homes["empty"], OCTOPANEL_NO_DAEMON=1, **direct)
    env_bash = benchenv.clean_env(homes["empty"], **direct)
    env_octocmd = benchenv.clean_env(homes["octocmd"])
    bin_ = venv / "bin"

    def jog(sign):
        return ["0", "0.1" if sign > 0 else "-0.1", "0"]

    def spawn(argv, env):
        # cwd: `python -c` puts the working directory first on sys.path; from a checkout, that would import
        # the source tree's octopanel instead of the bench venv's.
        return lambda sign: subprocess.run(
            argv(sign), env=env, capture_output=True, text=True, timeout=60, check=False, cwd=homes["empty"]
        )

    def bare(method, path, body=None):
        def run(sign):
            reply = session.request(method, vp.url + path, json=body and {**body, "y": 0.1 * sign}, timeout=10)
            return subprocess.CompletedProcess(path, 0 if reply.ok else 1, reply.text, "")

        return run

    status, jog8 = (lambda s: [str(bin_ / "8status")]), (lambda s: [str(bin_ / "8jog"), *jog(s)])
    status_sh, jog_sh = (lambda s: [str(HERE / "8status.sh")]), (lambda s: [str(HERE / "8jog.sh"), *jog(s)])
    # Like the scripts (cli.script), these leave with os._exit: the interpreter's start, and no teardown.
    no_teardown = "import os; os._exit(0)"
    fast_imports = f"from octopanel.cli import script; import octopanel.cli.fast; {no_teardown}"
    # The least any in-process command can cost with requests (a fixed choice): import it, send one GET.
    requests_floor = (
        f"import requests; requests.Session().get({vp.url + '/api/connection'!r}, "
        f"headers={{'X-Api-Key': {vp.api_key!r}}}, timeout=10).json(); {no_teardown}"
    )
    return {
        ("8status", "daemon"): spawn(status, env_daemon),
        ("8status", "in-process"): spawn(status, env_inproc),
        ("8status", "bash"): spawn(status_sh, env_bash),
        ("8status", "bash-octocmd"): spawn(status_sh, env_octocmd),
        ("8jog", "daemon"): spawn(jog8, env_daemon),
        ("8jog", "in-process"): spawn(jog8, env_inproc),
        ("8jog", "bash"): spawn(jog_sh, env_bash),
        ("8jog", "bash-octocmd"): spawn(jog_sh, env_octocmd),
        ("answer", "8status"): lambda sign: ask_daemon(daemon_socket, ["status"]),
        ("answer", "8jog"): lambda sign: ask_daemon(daemon_socket, ["jog", *jog(sign)]),
        ("bare", "8status"): bare("GET", "/api/connection"),
        ("bare", "8jog"): bare("POST", "/api/printer/printhead", {"command": "jog"}),
        ("floor", "python -c pass"): spawn(lambda s: [str(bin_ / "python"), "-c", "pass"], env_bash),
        ("floor", "python start"): spawn(lambda s: [str(bin_ / "python"), "-c", no_teardown], env_bash),
        ("floor", "fast-path imports"): spawn(lambda s: [str(bin_ / "python"), "-c", fast_imports], env_bash),
        ("floor", "requests"): spawn(lambda s: [str(bin_ / "python"), "-c", requests_floor], env_bash),
        ("floor", "curl alone"): spawn(
            lambda s: ["curl", "-s", "-o", "/dev/null", "-H", f"X-Api-Key: {vp.api_key}", f"{vp.url}/api/connection"],
            env_bash,
        ),
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
    first, second = key
    command = second if first in ("answer", "bare", "floor") else first
    ok = done.returncode == 0
    if command == "8status" and first != "bare":
        ok = ok and "Operational" in done.stdout
    elif command == "8jog" and first not in ("bare", "8jog") or key in (("8jog", "daemon"), ("8jog", "in-process")):
        ok = ok and "jogged" in done.stdout
    if not ok:
        raise RuntimeError(f"{key} failed with {done.returncode}:\n{done.stdout}{done.stderr}")


def wall_times(venv, vp, daemon_socket, runs, seed=2):
    """Median wall time of each variant over `runs` runs, interleaved in a random order each round."""
    from octopanel.printers.httpclient import environment_session

    homes = {"empty": benchenv.temp_home(), "octocmd": benchenv.temp_home()}
    (homes["octocmd"] / ".octocmd.conf").write_text(
        f'{{\n    "OctoAPI_KEY": "{vp.api_key}",\n    "OctoPrint_URL": "{vp.url}"\n}}\n'
    )
    session = environment_session(vp.url)  # set up as the daemon's client is, so that only the paths differ
    session.headers["X-Api-Key"] = vp.api_key
    table = variants(venv, vp, daemon_socket, homes, session)
    times = {key: [] for key in table}
    rng = random.Random(seed)
    try:
        for i in range(runs + 1):  # round 0 warms the page cache and checks the outputs
            order = list(table)
            rng.shuffle(order)
            for key in order:
                t0 = time.perf_counter()
                done = table[key](1 if i % 2 == 0 else -1)
                elapsed = time.perf_counter() - t0
                if i == 0:
                    check_output(key, done)
                else:
                    times[key].append(elapsed)
                time.sleep(0.01)
    finally:
        session.close()
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    return {key: median(values) for key, values in times.items()} | {"runs": runs}


# -- import time of the fast path ---------------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


def import_times(venv, env, runs=7):
    """python -X importtime 8status: the run with the median total; top-level imports and every module seen."""
    samples = []
    for _ in range(runs):
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-X", "importtime", str(venv / "bin" / "8status")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
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
    if code != 0:
        raise RuntimeError(f"python -X importtime 8status exited with {code}")
    forbidden = sorted(f for f in FORBIDDEN_ON_FAST_PATH if any(m == f or m.startswith(f + ".") for m in modules))
    return {"total": total, "top": top[:12], "count": len(modules), "forbidden": forbidden, "exit": code}


# -- the whole benchmark ------------------------------------------------------------------------------------------


def collect(venv, vp, quick=False, latency_result=None):
    """Every figure of this benchmark; latency_result reuses bench/daemon.py's OctoPrint run if given."""
    runs = 20 if quick else 40
    idle_s, trace_s = (10, 5) if quick else (30, 10)
    result = {"runs": runs}
    here = IdleDaemon(venv, vp, "as here (no /dev/input)")
    pi = IdleDaemon(venv, vp, "Pi-like (/dev/input watched)", pi_like=True)
    try:
        env_fast = benchenv.clean_env(here.home / "nohome", OCTOPANEL_SOCKET=here.socket, OCTOPRINT_URL=vp.url)
        env_inproc = benchenv.clean_env(
            here.home / "nohome", OCTOPANEL_NO_DAEMON=1, OCTOPRINT_URL=vp.url, OCTOPRINT_API_KEY=vp.api_key
        )
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
    lines = [
        (
            "| command | through the daemon | in-process | bash+curl | bash+curl, 8control config "
            "| daemon ÷ bash | in-process ÷ bash |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for command in ("8status", "8jog"):
        d, i, b, o = (wall[(command, how)] for how in ("daemon", "in-process", "bash", "bash-octocmd"))
        lines.append(
            f"| `{command}` | {ms(d, 1)} ms | {ms(i, 1)} ms | {ms(b, 1)} ms | {ms(o, 1)} ms "
            f"| **{ratio(d, b):.2f}×** | **{ratio(i, b):.2f}×** |"
        )
    floor, bash = wall[("floor", "requests")], wall[("8status", "bash")]
    lines.append(
        f"| floor | `python -c pass`: {ms(wall[('floor', 'python -c pass')], 1)} ms; without the "
        f"teardown: {ms(wall[('floor', 'python start')], 1)} ms "
        f"| `import requests` + one GET, no teardown: {ms(floor, 1)} ms "
        f"| `curl` alone: {ms(wall[('floor', 'curl alone')], 1)} ms "
        f"| | | floor ÷ 8status bash: {ratio(floor, bash):.2f}× |"
    )
    return "\n".join(lines)


def breakdown_table(wall):
    """Where the fast path's time goes: interpreter start and exit, imports, the daemon's answer, the rest."""
    start = wall[("floor", "python start")]
    imports = wall[("floor", "fast-path imports")] - start
    lines = [
        (
            "| through the daemon | wall time | = Python's start (`-c 'os._exit(0)'`) | + the fast path's imports "
            "| + the daemon's "
            "answer, from a warm client | + the rest | for comparison: one bare keep-alive request |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for command in ("8status", "8jog"):
        total, answer = wall[(command, "daemon")], wall[("answer", command)]
        lines.append(
            f"| `{command}` | {ms(total, 1)} ms | {ms(start, 1)} ms | {ms(imports, 1)} ms | {ms(answer, 1)} ms "
            f"| {ms(total - start - imports - answer, 1)} ms | {ms(wall[('bare', command)], 1)} ms |"
        )
    return "\n".join(lines)


def overhead_table(octoprint):
    lat = octoprint["latency"]
    bare = lat["bare"]["first"]
    lines = [
        "| sender | to first request p50 / p90 / p99 (ms) | minus bare p50 / p99 (ms) | ÷ bare (p50) |",
        "|---|---|---|---|",
    ]
    rows = [
        ("daemon, key press → first request", lat["daemon"]["first"]),
        ("daemon, key press → jog request (POST …/printhead)", lat["daemon"]["jog"]),
        ("bare keep-alive requests.Session, jog", bare),
    ]
    if "curl" in lat:
        rows.append(("`sh -c curl` spawned per key press (actkbd style), jog", lat["curl"]["first"]))
    for label, m in rows:
        lines.append(
            f"| {label} | {ms(m['p50'])} / {ms(m['p90'])} / {ms(m['p99'])} | {ms(m['p50'] - bare['p50'])} / "
            f"{ms(m['p99'] - bare['p99'])} | {ratio(m['p50'], bare['p50']):.2f}× |"
        )
    return "\n".join(lines)


def imports_table(imports):
    lines = [
        (
            f"total {imports['total'] * 1e3:.1f} ms for {imports['count']} modules (the median of 7 runs); "
            f"requests, urllib3, yaml, evdev, asyncio, systemd or octopanel.printers.octoprint.client/actions/settings imported: "
            f"{', '.join(imports['forbidden']) or 'none'}"
        ),
        "",
        "| top-level import | cumulative (ms) |",
        "|---|---|",
    ]
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
        floor = ratio(wall[("floor", "requests")], b)
        out.append(
            (
                f"`{command}` in-process {r:.2f}× bash+curl (target ≤ 6×; `python -c 'import requests' + one "
                f"GET` alone, without the teardown, is {floor:.2f}×)",
                r <= 6,
            )
        )
    for name, r in result["idle"].items():
        out.append((f"{name}: RSS {r['rss_mb']:.1f} MB (target ≤ 35 MB)", r["rss_mb"] <= 35))
        wakes = sum(t["wakeups"] for t in r["threads"].values())
        out.append(
            (
                (
                    f"{name}: {wakes} wake-ups in {r['seconds']:.0f} s idle; main thread blocked in "
                    f"{r['blocked'].get('main', '?')} (target: no periodic wake-ups besides the watchdog, which is "
                    f"off here)"
                ),
                wakes <= 1,
            )
        )
    forbidden = result["imports_fast"]["forbidden"]
    out.append(
        (f"fast path imports none of requests/yaml/evdev: {', '.join(forbidden) or 'none imported'}", not forbidden)
    )
    return out


def sections(result):
    """name -> (title, body) of every table this benchmark prints."""
    return {
        "wall": (
            f"8status and 8jog wall time (median of {result['wall']['runs']} interleaved runs each)",
            wall_table(result["wall"]),
        ),
        "breakdown": ("Where the fast path's time goes (medians of the same run)", breakdown_table(result["wall"])),
        "overhead": (
            "Key press → request against OctoPrint: the daemon vs a bare client vs curl per key press",
            overhead_table(result["octoprint"]),
        ),
        "burst": (
            "Jog-wheel burst against OctoPrint: 1,000 detents at 500 Hz",
            daemon_bench.burst_table([result["octoprint"]]),
        ),
        "idle": ("The daemon at rest", idle_table(result)),
        "imports_fast": (
            "`python -X importtime 8status` through the daemon (the fast path)",
            imports_table(result["imports_fast"]),
        ),
        "imports_inproc": (
            "The same without the daemon (in-process), for comparison",
            imports_table(result["imports_inproc"]),
        ),
    }


def report(result, names=None):
    parts = sections(result)
    return "\n\n".join(f"### {parts[n][0]}\n\n{parts[n][1]}" for n in (names or parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter idle period")
    args = parser.parse_args(argv)
    venv = benchenv.bench_venv()
    from octopanel.sandbox.virtualprinter import VirtualPrinter

    with VirtualPrinter() as vp:
        vp.connect()
        result = collect(venv, vp, args.quick)
    print(report(result), "", sep="\n")
    for text, met in targets_met(result) + daemon_bench.targets_met([result["octoprint"]]):
        print(f"{'met    ' if met else 'NOT MET'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
