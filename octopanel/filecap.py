"""Reading a small regular file with a size cap: config files and key files, never a FIFO or a device."""

import os
import stat

from octopanel.errors import ConfigError


def read_capped(path: "str | os.PathLike[str]", limit: int, what: str) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file of at most `limit` bytes, and its stat; a FIFO or device is never opened
    blocking (a FIFO with no writer would hang, /dev/zero never ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", str(path)) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ConfigError(
            f"cannot read {what}: not a regular file (a FIFO, a device or a directory); name a file", str(path)
        )
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"cannot read {what}: larger than {limit} bytes; is this the right file?", str(path))
    return data, st


def read_text_capped(path: "str | os.PathLike[str]", limit: int, what: str) -> tuple[str, os.stat_result]:
    data, st = read_capped(path, limit, what)
    try:
        return data.decode("utf-8"), st
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {what}: not UTF-8 text", str(path)) from None
