"""The install's hands: files and directories written under a root, with modes; commands run or printed."""

import grp
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import TextIO

# What systemctl and udevadm say on a machine (a container, a chroot) where systemd or udevd is not running.
NO_SYSTEMD = (
    "System has not been booted with systemd",
    "Failed to connect to bus",
    "Failed to send reload request: No such file or directory",
    "Failed to send reload request: Connection refused",
)


class Installer:
    """Writes under `root` ("/" or --destdir); runs commands only when `live`, else prints them."""

    def __init__(self, root: "str | os.PathLike[str]", live: bool, out: TextIO | None = None) -> None:
        self.root, self.live, self.out = Path(root), live, out or sys.stdout
        self.failed = False

    def path(self, rel: str) -> Path:
        return self.root / rel

    def say(self, verb: str, what: object, note: str = "") -> None:
        print(f"{verb:<10}{what}{f'  ({note})' if note else ''}", file=self.out)

    def run(self, *cmd: str) -> bool:
        """Run a system command; a missing tool or a machine without systemd is reported, not fatal."""
        line = " ".join(cmd)
        if not self.live:
            self.say("would run", line)
            return True
        if shutil.which(cmd[0]) is None:
            self.say("skipped", line, f"{cmd[0]} not found: run it yourself where it exists")
            return False
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            self.say("ran", line)
            return True
        err = (proc.stderr or proc.stdout).strip()
        if any(marker in err for marker in NO_SYSTEMD):
            self.say("skipped", line, "systemd is not running here; run it on the Pi after boot")
        else:
            self.say("failed", line, err or f"exit {proc.returncode}")
            self.failed = True
        return False

    def owner(self, path: Path, group: str) -> None:
        """root:group when installing for real; staged files keep the caller's ownership."""
        if self.live:
            os.chown(path, 0, grp.getgrnam(group).gr_gid if group != "root" else 0)

    def directory(self, rel: str, mode: int, group: str) -> None:
        path = self.path(rel)
        if path.is_dir():
            self.say("kept", f"{path}/")
        else:
            path.mkdir(parents=True)
            self.say("created", f"{path}/", f"mode {mode:04o}")
        self.owner(path, group)
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)

    def file(self, rel: str, data: bytes, mode: int, replace: bool, group: str = "root") -> str:
        """Write `data` unless the file exists (kept) or, when `replace`, has the same bytes. Returns the verb."""
        path = self.path(rel)
        if path.exists() and (not replace or path.read_bytes() == data):
            verb = "kept"
            note = "up to date" if replace else "yours: never overwritten"
        else:
            verb = "updated" if path.exists() else "created"
            note = f"mode {mode:04o}"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".octopanel-new")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)  # never a half-written unit or keymap
        self.owner(path, group)
        if stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
        self.say(verb, str(path), note)
        return verb
