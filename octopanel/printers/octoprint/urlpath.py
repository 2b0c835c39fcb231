"""User-supplied names as URL path segments: checked as the server would route them, then quoted one by one."""

from urllib.parse import quote, unquote

from octopanel.errors import UsageError


def segment_problem(segment: str) -> str | None:
    """Why `segment` cannot be one path segment, or None. Judged after percent-decoding, as servers route."""
    decoded = unquote(segment)
    if decoded == "":
        return "an empty path segment"
    if decoded in (".", ".."):
        return f"a '{segment}' path segment"
    if "/" in decoded or "\\" in decoded:
        return "a '/' or '\\' inside one name"  # %2F or a backslash: a separator to some servers
    if any(ord(c) < 32 or c == "\x7f" for c in decoded):
        return "a control character"
    return None


def file_path(name: object) -> str:
    """`name` if it is a relative OctoPrint file path (folder/file.gcode); ValueError saying why not."""
    name = str(name)
    if name.startswith(("/", "\\")):
        raise ValueError(
            f"{name!r} is an absolute path: give the name on OctoPrint's storage, e.g. folder/file.gcode; nothing sent"
        )
    for part in name.split("/"):
        problem = segment_problem(part)
        if problem:
            raise ValueError(f"{name!r} has {problem}: give a plain name such as folder/file.gcode; nothing sent")
    return name


def segment(name: object) -> str:
    """`name` if it is usable as a single path segment (a system command's name); ValueError saying why not."""
    name = str(name)
    problem = segment_problem(name)
    if problem:
        raise ValueError(f"{name!r} has {problem}: give one plain name such as 'reset'; nothing sent")
    return name


def quote_segment(name: object) -> str:
    """One checked segment, quoted whole ('/', '?', '#', '%' included)."""
    try:
        return quote(segment(name), safe="")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def quote_file_path(name: object) -> str:
    """A checked file path, each segment quoted separately."""
    try:
        return "/".join(quote(part, safe="") for part in file_path(name).split("/"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
