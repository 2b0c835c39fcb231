"""Path safety for the service: what octopanel.service runs must be root's, closed to writers, open to readers."""

import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from octopanel.errors import UsageError

SERVICE_USER = "octopanel"  # User= in systemd/octopanel.service; it is in no group that owns these paths
# ProtectHome=yes in the unit shows the service these as empty or inaccessible: nothing under them runs.
HOME_DIRS = (("root",), ("home",), ("run", "user"))
MISSING = "does not exist"
MAX_LINKS = 40  # the kernel's own limit before ELOOP
RECIPE = (
    'Install octopanel as README.md shows ("Run it as a service on a Raspberry Pi"), in a venv of '
    "the system Python:\n"
    "  sudo python3 -m venv /opt/octopanel && sudo /opt/octopanel/bin/pip install .\n"
    "  sudo /opt/octopanel/bin/octopanel install"
)


def _name(table: Callable[[int], Any], ident: int) -> str:
    try:
        return f"{table(ident)[0]} ({ident})"
    except KeyError:
        return str(ident)


def _mode_problem(st: os.stat_result, kind: str) -> str | None:
    """What is wrong with one existing, non-symlink component, or None. kind: dir, exec or file."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != 0:
        return f"is owned by user {_name(pwd.getpwuid, st.st_uid)}, not root: that user could replace it"
    if mode & stat.S_IWOTH:
        # The sticky bit (/tmp is 1777) does not make it safe: anyone may create a name in it once the
        # real one is gone (tmpfiles cleanup, a reboot), so anyone can swap the path the unit names;
        # and PrivateTmp=yes shows the service an empty /tmp anyway.
        return f"is world-writable (mode {mode:04o}): anyone could put another file in its place"
    if mode & stat.S_IWGRP:
        return (
            f"is group-writable (mode {mode:04o}, group {_name(grp.getgrgid, st.st_gid)}): "
            "any member of that group could put another file in its place"
        )
    if kind == "dir" and not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if kind != "dir" and stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    # Others' bits decide: the service user is not in root's group (nor in the owning group).
    need = stat.S_IROTH | (stat.S_IXOTH if kind in ("dir", "exec") else 0)
    if mode & need != need:
        wanted = "r-x" if need & stat.S_IXOTH else "r--"
        return f"is mode {mode:04o}: the service user {SERVICE_USER} is among the others, who need {wanted} to " + (
            "enter and list it" if kind == "dir" else "run it" if kind == "exec" else "read it"
        )
    return None


def _walk(path: Path, kind: str, sysroot: Path, links: int) -> tuple[Path, str | None]:
    """(resolved path, None) or (offending component, what is wrong), following every symlink on the way.

    Components at or above `sysroot` are not checked: it stands for / (tests craft trees under a tmp dir)."""
    if sysroot != Path("/") and path.is_relative_to(sysroot):
        parts, current = path.relative_to(sysroot).parts, sysroot
    else:
        parts, current = path.parts[1:], Path("/")
        found = _mode_problem(os.stat(current), "dir")
        if found:
            return current, found
    for index, name in enumerate(parts):
        current = current / name  # `current` itself holds no symlink: each was replaced by its target
        rel = current.relative_to(sysroot).parts if current.is_relative_to(sysroot) else current.parts[1:]
        if rel in HOME_DIRS:
            return current, ("is a home directory, which ProtectHome=yes in octopanel.service hides from the service")
        last = index == len(parts) - 1
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return current, MISSING
        except OSError as exc:
            return current, f"cannot be examined: {exc.strerror}"
        if stat.S_ISLNK(st.st_mode):
            # A link cannot be changed, only replaced, and its directory was checked: what matters is where it points.
            links += 1
            if links > MAX_LINKS:
                return current, "is part of a symlink loop"
            target = Path(os.path.normpath(current.parent / os.readlink(current)))
            current, found = _walk(target, kind if last else "dir", sysroot, links)
            if found:
                return current, found
            continue
        found = _mode_problem(st, kind if last else "dir")
        if found:
            return current, found
    return current, None


def first_problem(path: "str | os.PathLike[str]", kind: str, sysroot: str = "/") -> tuple[Path, str] | None:
    """(component, what is wrong with it) for the first unsafe component of `path`, else None."""
    component, found = _walk(Path(os.path.abspath(path)), kind, Path(sysroot), 0)
    return (component, found) if found else None


def check_service_paths(
    paths: Iterable[tuple[str, "str | os.PathLike[str]", str]],
    live: bool,
    warn: Callable[[str], object],
    sysroot: str = "/",
) -> None:
    """Refuse (UsageError, exit 2) the first unsafe path of `paths` [(role, path, kind)]; warn of missing ones.

    A path missing from this machine is refused when installing for real and only warned of with --destdir,
    which may stage for another machine."""
    missing: set[Path] = set()
    for role, path, kind in paths:
        found = first_problem(path, kind, sysroot)
        if found is None:
            continue
        component, problem = found
        if problem == MISSING and not live:
            if component not in missing:
                warn(f"warning: cannot check the {role} {path}: {component} {MISSING} on this machine")
            missing.add(component)
            continue
        path = Path(os.path.abspath(path))
        if component == path:
            where = ""
        elif path.is_relative_to(component):
            where = "; on the way to it, "
        else:
            where = f" (it resolves to {os.path.realpath(path)}); on the way, "
        raise UsageError(
            f"octopanel.service (User={SERVICE_USER}) cannot safely use the {role} {path}{where or ': '}"
            f"{component} {problem}.\n{RECIPE}"
        )
