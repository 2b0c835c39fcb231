"""Files on OctoPrint's local storage: upload, print from a file or stdin, select, list."""

import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from octopanel.actions.invoke import Context, Result, dump
from octopanel.actions.registry import Action, Param, Registry
from octopanel.errors import UsageError
from octopanel.printers.octoprint.multipart import not_regular, open_regular, spool
from octopanel.printers.octoprint.urlpath import file_path
from octopanel.values import to_str

GROUP = "Files"
PROGRESS_MIN_BYTES = 256 * 1024  # smaller uploads finish before a progress bar is worth drawing


def open_source(path: str, stdin: Any = None) -> BinaryIO:
    """An open binary file for `path` (a regular file only), or stdin spooled to a temporary file for '-'."""
    if path == "-":
        stream: Any = stdin if stdin is not None else sys.stdin
        return spool(getattr(stream, "buffer", stream))
    return open_regular(path)


def source_path(text: object) -> str:
    """A local file to upload, or '-': refused at once if it exists and is not a regular file (FIFO, device,
    directory), so that even 8runfile's state check is not sent. A missing file is reported when opened."""
    text = to_str(text)
    try:
        problem = None if text == "-" else not_regular(os.stat(text).st_mode, text)
    except OSError:
        problem = None
    if problem:
        raise ValueError(problem)
    return text


def progress_bar(ctx: Context, size: int) -> Callable[[int, int], None] | None:
    if size < PROGRESS_MIN_BYTES or not ctx.tty:
        return None

    def show(sent: int, total: int) -> None:
        filled = int(30 * sent / total) if total else 30
        ctx.progress(f"uploading [{'#' * filled}{'.' * (30 - filled)}] {sent * 100 // max(total, 1)} %")

    return show


def upload(ctx: Context, path: str, name: str | None = None, select: bool = False, print_: bool = False) -> Result:
    target = name or ("stdin.gcode" if path == "-" else os.path.basename(path))
    try:
        file_path(target)
    except ValueError as exc:
        raise UsageError(f"name: {exc}") from None
    with open_source(path, getattr(ctx, "stdin", None)) as handle:
        size = os.fstat(handle.fileno()).st_size
        result = ctx.client.upload(target, handle, select=select, print_=print_, progress=progress_bar(ctx, size))
    if size >= PROGRESS_MIN_BYTES:
        ctx.progress_done()
    # OctoPrint sanitizes names (it drops '?', for one): report the name it actually stored.
    stored = ((result or {}).get("files", {}).get("local") or {}).get("name") or target
    return Result(f"uploaded {stored} ({size} bytes)" + (", printing" if print_ else ""), result)


def runfile(ctx: Context, path: str) -> Result:
    return upload(ctx, path, name="tmp.g", select=True, print_=True)


def fselect(ctx: Context, name: str) -> Result:
    ctx.client.select_file(name)
    return Result(f"selected {name}")


def ls_raw(ctx: Context) -> Result:
    data = ctx.client.files()
    return Result(dump(data), data)


def ls(ctx: Context) -> Result:
    data = ctx.client.files()
    names: list[Any] = []  # OctoPrint's path (or name) of each file

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if entry.get("type") == "folder":
                walk(entry.get("children") or [])
            else:
                names.append(entry.get("path") or entry.get("name"))

    walk(data.get("files") or [])
    return Result("\n".join(names), data)


def ll(ctx: Context, name: str) -> Result:
    data = ctx.client.file_info(name)
    return Result(dump(data), data)


def register(reg: Registry) -> None:
    path = Param("path", source_path, help="a G-code file, or - for stdin")
    reg.register(
        Action(
            "upload",
            upload,
            "upload FILE (- for stdin) without printing it",
            GROUP,
            params=(path, Param("name", file_path, None, help="name on OctoPrint")),
            local=True,
        )
    )
    reg.register(
        Action(
            "runfile",
            runfile,
            "upload FILE (- for stdin) as tmp.g and print it",
            GROUP,
            params=(path,),
            states=frozenset({"idle"}),
            local=True,
        )
    )
    reg.register(
        Action(
            "fselect",
            fselect,
            "select FILE for printing",
            GROUP,
            params=(Param("name", file_path),),
            states=frozenset({"idle", "disconnected", "error"}),
        )
    )
    reg.register(Action("ls_raw", ls_raw, "print GET /api/files as JSON", GROUP))
    reg.register(Action("ls", ls, "list the files, one per line", GROUP))
    reg.register(Action("ll", ll, "print FILE's details as JSON", GROUP, params=(Param("name", file_path),)))
