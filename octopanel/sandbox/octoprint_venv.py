"""The cached venv holding OctoPrint 1.11.8 (installed once) and a prepared admin user for VirtualPrinter.

OctoPrint's pins must not mix with octopanel's, so it gets a venv of its own.
"""

import fcntl
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OCTOPRINT_VERSION = "1.11.8"
READY_MARKER = ".octopanel-ready"  # written last, so a half-finished install is never mistaken for a venv


class VirtualPrinterError(RuntimeError):
    """OctoPrint could not be installed, started or driven; the message carries the log tail."""


def cache_root() -> Path:
    """$OCTOPANEL_CACHE, else ~/.cache/octopanel; the venv is its octoprint-1.11.8 subdirectory."""
    return Path(os.environ.get("OCTOPANEL_CACHE") or Path.home() / ".cache" / "octopanel")


def ensure_venv(cache_dir: "str | os.PathLike[str] | None" = None) -> Path:
    """Return the venv holding OctoPrint 1.11.8 under cache_dir, installing it once (~15 s) if needed."""
    venv = Path(cache_dir or cache_root()) / f"octoprint-{OCTOPRINT_VERSION}"
    if (venv / READY_MARKER).exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".octoprint-{OCTOPRINT_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel test run or demo waits for our install
        if (venv / READY_MARKER).exists():
            return venv
        if _is_working_venv(venv):  # made before the marker existed
            (venv / READY_MARKER).touch()
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # half-finished: start over
        print(
            f"octopanel: installing OctoPrint {OCTOPRINT_VERSION} into {venv} (one time, about 15 s)…",
            file=sys.stderr,
            flush=True,
        )
        # Built in place: a venv cannot be renamed afterwards, its scripts hold absolute paths.
        for argv in (
            [sys.executable, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"OctoPrint=={OCTOPRINT_VERSION}",
            ],
        ):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise VirtualPrinterError(f"{' '.join(argv)} failed:\n{tail(done.stdout + done.stderr)}")
        if not _is_working_venv(venv):
            raise VirtualPrinterError(f"{venv}/bin/octoprint does not report version {OCTOPRINT_VERSION}")
        (venv / READY_MARKER).touch()
    return venv


def _is_working_venv(venv: Path) -> bool:
    exe = venv / "bin" / "octoprint"
    if not exe.exists():
        return False
    done = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip().endswith(OCTOPRINT_VERSION)


def admin_template(venv: Path) -> tuple[str, str]:
    """Return (users.yaml text, password) of a prepared admin user, made once per venv.

    `octoprint user add` costs ~0.8 s (argon2 hashing plus startup), so its output is cached."""
    template = venv / "octopanel-template"
    if not template.exists():
        build = Path(tempfile.mkdtemp(prefix="template-", dir=venv))
        password = secrets.token_urlsafe(12)
        done = subprocess.run(
            [
                str(venv / "bin" / "octoprint"),
                "--basedir",
                str(build / "base"),
                "user",
                "add",
                "admin",
                "--password",
                password,
                "--admin",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise VirtualPrinterError(f"octoprint user add failed:\n{tail(done.stdout + done.stderr)}")
        shutil.move(build / "base" / "users.yaml", build / "users.yaml")
        (build / "password").write_text(password)
        shutil.rmtree(build / "base")
        try:
            build.rename(template)  # atomic; a concurrent builder may have won, which is as good
        except OSError:
            shutil.rmtree(build)
    users = (template / "users.yaml").read_text()
    if users.count("apikey: null") != 1:
        raise VirtualPrinterError(f"{template}/users.yaml: expected one 'apikey: null' line")
    return users, (template / "password").read_text()


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
