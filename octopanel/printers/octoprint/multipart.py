"""A multipart/form-data upload body streamed from an open file: memory stays flat whatever the file's size."""

import os
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterable
from typing import BinaryIO

from octopanel.errors import UsageError

CHUNK = 64 * 1024


def open_regular(path: str) -> BinaryIO:
    """A binary file object for `path`, refused (UsageError) unless it is a regular file.

    Opened non-blocking first: a plain open() of a FIFO waits for a writer, before any check could run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}; nothing sent") from None
    problem = not_regular(os.fstat(fd).st_mode, path)
    if problem:
        os.close(fd)
        raise UsageError(problem)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def not_regular(mode: int, path: str) -> str | None:
    """Why a file of this st_mode cannot be uploaded, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = "a directory" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "not a regular file"
    return f"cannot upload {path}: it is {kind}; give a G-code file (or - for stdin); nothing sent"


def spool(stream: BinaryIO) -> BinaryIO:
    """stdin copied to an anonymous temporary file, so that its length is known before sending."""
    spooled = tempfile.TemporaryFile()
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        spooled.write(chunk)
    spooled.seek(0)
    return spooled


class MultipartBody:
    """The form fields, then `handle`'s bytes, as one body requests reads in chunks; len() is Content-Length.

    `progress(sent, total)` is called as the body goes out."""

    def __init__(
        self,
        fields: Iterable[tuple[str, str]],
        filename: str,
        handle: BinaryIO,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        boundary = "octopanel-" + uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields
        )
        safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.handle, self.progress = handle, progress
        self.file_size = os.fstat(handle.fileno()).st_size - handle.tell()
        self.parts: list[bytes | None] = [
            head,
            None,
            f"\r\n--{boundary}--\r\n".encode(),
        ]  # None: the file, read as it goes
        self.total = len(head) + self.file_size + len(self.parts[2] or b"")
        self.sent, self.file_left = 0, self.file_size

    def __len__(self) -> int:
        return self.total

    def read(self, size: int | None = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else min(size, CHUNK)
        chunk = b""
        while self.parts and not chunk:
            part = self.parts[0]
            if part is None:
                chunk = self.handle.read(min(size, self.file_left)) if self.file_left else b""
                if self.file_left and not chunk:
                    raise UsageError(
                        f"the file shrank while it was being uploaded ({self.file_left} bytes "
                        "missing): the upload is incomplete"
                    )
                self.file_left -= len(chunk)
                if not self.file_left:
                    self.parts.pop(0)  # bytes appended meanwhile are not sent: Content-Length is fixed
            else:
                chunk, self.parts[0] = part[:size], part[size:]
                if not self.parts[0]:
                    self.parts.pop(0)
        self.sent += len(chunk)
        if self.progress is not None and chunk:
            self.progress(self.sent, self.total)
        return chunk
