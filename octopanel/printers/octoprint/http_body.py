"""Reading a reply under one deadline and a size cap, parsing its JSON, and putting failures into words."""

import errno
import http.client
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3.exceptions as u3

from octopanel.errors import ServerError, Unreachable

JSON_MAX_BYTES = 8 * 1024 * 1024  # OctoPrint's largest answer, a recursive file list, is well under 1 MB
ERROR_MAX_BYTES = 64 * 1024  # an error page is shown in 300 characters at most
JSON_MAX_DEPTH = 100  # OctoPrint's replies nest a few levels; json's C parser overflows near 1000
CHUNK = 64 * 1024
TOO_DEEP = object()


def read_body(
    resp: requests.Response, deadline: float, limit: int, what: str, now: Callable[[], float] = time.monotonic
) -> bytes:
    """All of `resp`'s (stream=True) body as bytes, by `deadline` (a `now()` value) and at most `limit` bytes.

    requests' read timeout applies to each socket read, so a server dripping a byte a second never times
    out; here the body is read in chunks against one deadline instead. Raises Unreachable or ServerError."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        resp.close()
        raise ServerError(
            f"{what}: the answer is {int(declared)} bytes, more than the {limit} expected", resp.status_code
        )
    raw = resp.raw
    read = getattr(raw, "read1", None) or raw.read  # read1 returns what has arrived (urllib3 >= 2)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            remaining = deadline - now()
            if remaining <= 0:
                raise Unreachable(f"{what}: did not answer in time (the answer kept coming, too slowly)")
            set_socket_timeout(raw, remaining)
            chunk = read(CHUNK, decode_content=True)  # count what gzip unpacks to, not what it arrives as
            if not chunk:
                raw.release_conn()  # the whole body is read: the connection may be kept alive
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise ServerError(f"{what}: the answer is more than the {limit} bytes expected", resp.status_code)
            chunks.append(chunk)
    except BaseException:
        resp.close()  # the connection is mid-body: never return it to the pool
        raise


def set_socket_timeout(raw: object, seconds: float) -> None:
    """Shorten the next socket read to what is left of the deadline (when urllib3 exposes the connection)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))  # urllib3 sets it afresh when it reuses the connection


def parse_json(method: str, path: str, resp: requests.Response) -> Any:
    """The reply's JSON (None for an empty body); ServerError for anything that is not plain, shallow JSON."""
    if resp.status_code == 204 or not resp.content:
        return None
    where = f"{method} /{path.lstrip('/')}"
    try:
        data = resp.json()
    except RecursionError:
        data = TOO_DEEP
    except ValueError:
        raise ServerError(
            f"OctoPrint sent something that is not JSON for {where}", resp.status_code, resp.text[:200]
        ) from None
    if data is TOO_DEEP or too_deep(data):
        raise ServerError(
            f"OctoPrint's answer to {where} is nested more than {JSON_MAX_DEPTH} levels deep: "
            "not a reply octopanel can use",
            resp.status_code,
        )
    return data


def too_deep(data: object, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether `data` nests lists and dicts more than `limit` deep (checked without recursion)."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def error_json(resp: requests.Response) -> Any:
    """The reply's JSON for an error message, or None when it is not (or not readable) JSON."""
    try:
        return resp.json()
    except (ValueError, RecursionError):
        return None


def error_message(resp: requests.Response) -> str:
    """OctoPrint's own words from an error response (JSON 'error' field or a short text body)."""
    data = error_json(resp)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    text = resp.text or ""
    if "<" in text:  # Flask/Tornado HTML error pages: keep only the readable message
        match = re.search(r"<p>(.*?)</p>", text, re.S)
        text = match.group(1) if match else ""
    return " ".join(text.split())[:300]


REASONS = (  # (exception types, words), most specific first: judged by type, as urllib3 and the OS raise them
    ((ConnectionRefusedError,), "connection refused"),
    ((socket.gaierror, u3.NameResolutionError), "unknown host name"),
    ((http.client.RemoteDisconnected,), "the server closed the connection"),
    ((ConnectionResetError,), "the connection was reset"),
    ((ConnectionAbortedError,), "the connection was aborted"),
    ((u3.InvalidChunkLength,), "the answer was garbled"),
    ((http.client.IncompleteRead,), "the answer was cut short"),
    ((http.client.BadStatusLine, http.client.LineTooLong), "the answer was not HTTP"),
    (
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            u3.LocationParseError,
            UnicodeError,
        ),
        "the URL is not valid",
    ),
    ((TimeoutError, requests.Timeout), "timed out"),
)


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception inside it: urllib3's `reason`, exception arguments, __cause__, __context__."""
    found: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is f for f in found):
            continue
        found.append(e)
        todo += [getattr(e, "reason", None), *e.args, e.__cause__, e.__context__]
    return found


def short_reason(exc: BaseException) -> str:
    """A plain-words reason for a network failure, never a Python repr: decided by the types of its causes,
    not by their messages (which change between urllib3 releases and OS locales)."""
    chain = causes(exc)
    if any(isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) for e in chain):
        return "no route to host"
    for types, words in REASONS:
        if any(isinstance(e, types) for e in chain):
            return words
    return "no connection could be made"
