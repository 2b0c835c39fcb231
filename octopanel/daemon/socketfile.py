"""The control socket's file: a stale one removed, a live daemon's never replaced, ours bound and linked in place."""

import grp
import logging
import os
import socket
import stat

from octopanel.errors import UsageError

log = logging.getLogger("octopanel.daemon.control")  # its messages read as the control socket's, as before the split
BACKLOG = 512  # connections the kernel holds until the loop accepts them (capped by net.core.somaxconn)
CLAIM_ATTEMPTS = 3


def answers(path: str) -> bool:
    """True if a daemon listens on the path (it accepts, or its backlog is full); OSError if we cannot tell."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except BlockingIOError:
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        return True


def remove_stale(path: str) -> None:
    """Unlink a socket file left by a daemon that died; refuse to touch anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise UsageError(f"control socket {path}: exists and is not a socket; nothing was changed")
    if answers(path):
        raise UsageError(
            f"control socket {path}: another octopanel daemon answers there; stop it first "
            "(systemctl stop octopanel), or give this one --control PATH or --no-control"
        )
    try:
        again = os.lstat(path)
    except FileNotFoundError:
        return
    if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino):  # still the file nobody answered on
        os.unlink(path)
        log.info("removed the stale control socket %s (nobody answered on it)", path)


def bind(path: str, mode: int, group: str | None) -> tuple[socket.socket, tuple[int, int]]:
    """A listening socket linked at `path`, and the (st_dev, st_ino) of the file: the only one to unlink."""
    # Bound under a temporary name and linked into place once listening: a client that sees the path
    # can connect (between bind and listen it would be refused), and link() fails if the path exists,
    # so a daemon that started meanwhile is never replaced.
    building = os.path.join(os.path.dirname(path), f".{os.getpid()}.new")  # short: sun_path has 108 bytes
    if os.path.lexists(building):
        os.unlink(building)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never let the socket exist, even briefly, with wider permissions
    try:
        sock.bind(building)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    try:
        if group:
            try:
                os.chown(building, -1, grp.getgrnam(group).gr_gid)
            except (KeyError, PermissionError) as exc:
                log.warning("cannot give %s to group %s: %s", path, group, exc)
        os.chmod(building, mode)
        sock.listen(BACKLOG)
        st = os.lstat(building)
        for _attempt in range(CLAIM_ATTEMPTS):
            try:
                os.link(building, path)
                break
            except FileExistsError:
                remove_stale(path)  # raises if what appeared there answers
        else:
            raise UsageError(f"control socket {path}: keeps reappearing; is another daemon starting?")
        identity = (st.st_dev, st.st_ino)
    except BaseException:
        sock.close()
        raise
    finally:
        os.unlink(building)
    return sock, identity
