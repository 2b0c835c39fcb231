"""`octopanel install --klipper-macros DIR`: write octopanel's guard macros for Klipper to DIR/octopanel.cfg.

The file gets a first line recording the SHA-256 of the rest, so a later run can tell a copy it wrote and
nobody changed (replaced by a newer one) from a file someone edited or wrote themselves (never overwritten).
"""

import argparse
import errno
import hashlib
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from octopanel.datafiles import shipped_path
from octopanel.errors import OctopanelError, UsageError

MACROS = "etc/klipper/octopanel.cfg"
NAME = "octopanel.cfg"
INCLUDE = f"[include {NAME}]"
HEADER = "# written by `octopanel install --klipper-macros`; sha256 {digest} of the lines below (do not edit)\n"
HEADER_RE = re.compile(rb"# written by `octopanel install --klipper-macros`; sha256 ([0-9a-f]{64}) ")
VERSION_RE = re.compile(rb"^variable_version: (\d+)$", re.MULTILINE)


def rendered() -> bytes:
    """What DIR/octopanel.cfg should hold: the header line, then the shipped macro file."""
    path = shipped_path(MACROS)
    if path is None:
        raise OctopanelError(f"{MACROS} is missing from this octopanel installation; reinstall it with pip")
    body = path.read_bytes()
    return HEADER.format(digest=hashlib.sha256(body).hexdigest()).encode() + body


def unchanged_since_written(data: bytes) -> bool:
    """True if data is a file this command wrote and nobody edited since (its header's digest still holds)."""
    first, _, body = data.partition(b"\n")
    match = HEADER_RE.match(first + b"\n")
    return match is not None and hashlib.sha256(body).hexdigest().encode() == match.group(1)


def version(data: bytes) -> str:
    found = VERSION_RE.search(data)
    return found.group(1).decode() if found else "?"


def install_macros(directory: str, out: TextIO = sys.stdout) -> int:
    """Write (or update) DIR/octopanel.cfg and say how to include it; exit 2 if DIR is missing or the file
    there is someone's own."""
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(
            f"--klipper-macros {directory}: no such directory; expected Klipper's config directory, "
            "the one holding printer.cfg (often ~/printer_data/config)"
        )
    target = folder / NAME
    data = rendered()
    try:
        verb = write(target, data)
    except OSError as exc:  # a directory in the way, no permission, disk full
        advice = f"; run this as the user owning {folder}" if exc.errno in (errno.EACCES, errno.EPERM) else ""
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}{advice}") from None
    print(f"{verb:<10}{target}  ({'up to date: ' if verb == 'kept' else ''}macros version {version(data)})", file=out)
    return hint(folder, out)


def write(target: Path, data: bytes) -> str:
    """Write data to target unless it holds it already ("kept"); "created" or "updated" otherwise."""
    if target.exists() or target.is_symlink():
        old = target.read_bytes()
        if old == data:
            return "kept"
        if not unchanged_since_written(old):
            raise UsageError(
                f"{target} exists and is not the copy octopanel wrote (edited, or someone else's): not "
                f"replacing it. Compare it with {shipped_path(MACROS)}, move it away, and run this again"
            )
        verb = "updated"
    else:
        verb = "created"
    tmp = target.with_name(NAME + ".octopanel-new")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)  # Klipper never reads half a file
    return verb


def hint(folder: Path, out: TextIO) -> int:
    """Say whether printer.cfg includes the file already, or which line to add; then how to load it."""
    printer_cfg = folder / "printer.cfg"
    try:
        included = any(line.strip() == INCLUDE for line in printer_cfg.read_text(errors="replace").splitlines())
    except OSError:
        included = False
    if included:
        print(f"{printer_cfg} includes it already; run RESTART in Klipper's console to load a new version", file=out)
    else:
        print(f"Add this line to {printer_cfg}, then run RESTART in Klipper's console:\n    {INCLUDE}", file=out)
    return 0


def main(args: argparse.Namespace) -> int:
    """The --klipper-macros run of `octopanel install`: the macro file only, with no service flags."""
    others = [
        flag
        for flag, value in (
            ("--destdir", args.destdir),
            ("--prefix", args.prefix),
            ("--no-enable", args.no_enable),
            ("--api-key-file", args.api_key_file),
        )
        if value
    ]
    if others:
        raise UsageError(f"--klipper-macros writes the macro file only; run {' '.join(others)} separately")
    return install_macros(args.klipper_macros)
