"""What every benchmark shares: the non-editable bench venv, a clean environment, statistics, the machine.

The measured programs (the daemon, the 8xxx scripts) run from a venv holding a regular (non-editable)
install of this checkout: an editable install adds its import finder, about 11 ms of start-up.
"""

import datetime
import hashlib
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # octopanel.sandbox.virtualprinter for the parent, whether or not it is installed

from octopanel.sandbox.octoprint_venv import OCTOPRINT_VERSION, cache_root  # noqa: E402  (after the path is set)

LEAKY_PREFIXES = ("OCTOPRINT_", "OCTOPANEL_", "XDG_CONFIG_", "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM")
STAMP = ".octopanel-source"


def source_digest():
    """A hash of what `pip install` would install: the package, the build files and the data files shipped."""
    digest = hashlib.sha256()
    files = [ROOT / name for name in ("pyproject.toml", "setup.py", "MANIFEST.in")]
    files += [p for top in ("octopanel", "etc", "systemd", "udev") for p in (ROOT / top).rglob("*")]
    for path in sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def bench_venv():
    """The bench venv ($OCTOPANEL_BENCH_VENV, else ~/.cache/octopanel/benchvenv), reinstalled when the source changed."""
    venv = Path(os.environ.get("OCTOPANEL_BENCH_VENV") or cache_root() / "benchvenv")
    want = source_digest()
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text() == want and (venv / "bin" / "8status").exists():
        return venv
    fresh = not (venv / "bin" / "python").exists()
    print(
        f"bench: {'creating' if fresh else 'updating'} the bench venv {venv} (pip install {ROOT})…",
        file=sys.stderr,
        flush=True,
    )
    steps = [[sys.executable, "-m", "venv", str(venv)]] if fresh else []
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps.append(pip + [str(ROOT)] if fresh else pip + ["--no-deps", "--force-reinstall", str(ROOT)])
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"bench: {' '.join(argv)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    stamp.write_text(want)
    return venv


def clean_env(home, **extra):
    """os.environ without the variables that would leak the developer's setup in, HOME set, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env["HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def temp_home():
    return Path(tempfile.mkdtemp(prefix="octopanel-bench-"))


# -- statistics ------------------------------------------------------------------------------------------------


def pct(values, q):
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values):
    return statistics.median(values) if values else math.nan


def ms(seconds, digits=2):
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1e3:.{digits}f}"


# -- the machine -------------------------------------------------------------------------------------------------


def machine():
    """A description of this machine for RESULTS.md."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    venv_python = bench_venv() / "bin" / "python"
    version = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": mem.lstrip(", "),
        "kernel": platform.release(),
        "python": version,
        "octoprint": OCTOPRINT_VERSION,
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "input": "no /dev/input on this machine" if not os.path.isdir("/dev/input") else "/dev/input present",
    }
