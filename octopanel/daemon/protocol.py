"""The control socket's messages, both ends: request kinds, reply shapes and their encoding (stdlib only).

A request is one line: an action line (`jog z=1`, from scripts and `socat`), or a JSON object from the fast
CLI, `{"argv": [name, *words]}` to run a command or `{"same_config": {"stamp"|"identity": ...}}` to ask
whether the daemon serves the caller's settings. Every request gets one reply line, a JSON object:
  {"ok": true, "action": "jog", "sent": true, "message": "...", "data": ...}    (data: when there is any)
  {"ok": false, "error": "...", "exit": 1|2}    exit: the code the 8xxx command would give
  {"ok": false, "busy": true, "error": "daemon busy: ...; nothing sent", "exit": 1}
  {"ok": false, "local": true}    the CLI runs it in-process; nothing was run here
  {"ok": true, "same_config": true|false}
The fast CLI imports this module, so it imports neither `json` (it pulls in `re` and `enum`, ~5 ms) nor
anything of octopanel's: json's C half encodes and decodes here, and `json` itself only on the daemon's side
or where its output is needed.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the fast path does not import typing
if TYPE_CHECKING:
    from typing import Any

try:  # json's C half: `import json` costs a third of the fast path
    from _json import encode_basestring_ascii, make_scanner
except ImportError:  # not CPython
    encode_basestring_ascii = make_scanner = None  # type: ignore[assignment,misc]

MAX_LINE = 4096  # an action line is short; anything longer is garbage or an attack
ARGV, SAME_CONFIG = "argv", "same_config"


class ProtocolError(ValueError):
    """A request line that is not one of the kinds above (answered as a usage error, exit 2)."""


# -- requests ----------------------------------------------------------------------------------------------


def encode_argv(words: list[str]) -> str:
    """The request line for a command: what json.dumps({"argv": words}) writes, without importing json."""
    if encode_basestring_ascii is None:
        import json

        return json.dumps({ARGV: words}) + "\n"
    return '{"argv": [' + ", ".join(map(encode_basestring_ascii, words)) + "]}\n"


def encode_query(query: dict[str, Any]) -> str:
    """The request line asking whether the daemon serves these settings (see settings' identity and stamp)."""
    if encode_basestring_ascii is None or "identity" in query:
        import json  # the identity's limits are floats, which encode_value does not write

        return json.dumps({SAME_CONFIG: query}) + "\n"
    return '{"same_config": ' + encode_value(query) + "}\n"


def encode_value(value: Any) -> str:
    """JSON for None, ints, strings, lists and dicts of them, as json.dumps writes it."""
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(encode_value, value)) + "]"
    return "{" + ", ".join(f"{encode_value(k)}: {encode_value(v)}" for k, v in value.items()) + "}"


def parse_request(text: str) -> tuple[str, Any]:
    """(kind, payload) of one request line (stripped, UTF-8 decoded): ("line", text), (ARGV, [name, *words])
    or (SAME_CONFIG, query). ProtocolError if a JSON request is not one of those."""
    if not text.startswith("{"):  # no action name starts with "{": the line is JSON or it is an action line
        return "line", text
    try:
        request = decode(text.encode())
    except (ValueError, RecursionError):
        raise ProtocolError("malformed request: not one JSON object") from None
    if not isinstance(request, dict) or len(request) != 1 or next(iter(request)) not in (ARGV, SAME_CONFIG):
        raise ProtocolError('malformed request: expected {"argv": [...]} or {"same_config": {...}}')
    kind, payload = next(iter(request.items()))
    if kind == ARGV and not (isinstance(payload, list) and payload and all(isinstance(w, str) for w in payload)):
        raise ProtocolError("malformed request: argv must be a non-empty list of strings")
    return kind, payload


# -- replies -----------------------------------------------------------------------------------------------


def done(action: str | None, sent: bool, message: str | None, data: Any = None) -> dict[str, Any]:
    """An action ran (or, sent False, decided there was nothing to send)."""
    reply = {"ok": True, "action": action, "sent": sent, "message": message}
    if data is not None:
        reply["data"] = data
    return reply


def failed(error: str, exit_code: int) -> dict[str, Any]:
    """Refused or failed: `exit_code` is what the 8xxx command exits with (2: nothing was sent)."""
    return {"ok": False, "error": error, "exit": exit_code}


def busy(why: str) -> dict[str, Any]:
    """The reply to a client turned away: nothing of its was run."""
    return {"ok": False, "busy": True, "error": f"daemon busy: {why}; nothing sent", "exit": 1}


def run_locally() -> dict[str, Any]:
    """The fast CLI should run this command in-process (it reads the caller's files, waits long, or is forced)."""
    return {"ok": False, "local": True}


def config_answer(same: object) -> dict[str, Any]:
    return {"ok": True, SAME_CONFIG: bool(same)}


def result_data(action: str | None, sent: bool | None, message: str | None, data: Any = None) -> Any:
    """What `--json` prints for a result: the action's data if it has any, else what happened."""
    return data if data is not None else {"action": action, "sent": sent, "message": message}


def reply_data(reply: dict[str, Any]) -> Any:
    """result_data of a `done` reply, as the daemon sent it."""
    return result_data(reply.get("action"), reply.get("sent"), reply.get("message"), reply.get("data"))


def exit_code(reply: dict[str, Any]) -> int:
    """The exit code a failed reply stands for (1 when it names none, or something that is not one)."""
    code = reply.get("exit", 1)
    return code if isinstance(code, int) and not isinstance(code, bool) else 1


def encode_reply(reply: dict[str, Any]) -> bytes:
    """One reply line, as bytes (the daemon's side: it has `json` loaded anyway)."""
    import json

    return (json.dumps(reply, separators=(",", ":"), default=str) + "\n").encode()


class _Decoding:
    """What _json's scanner reads from a JSONDecoder: the defaults of json.loads."""

    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = float  # NaN, Infinity, -Infinity
    memo: dict[str, str] = {}


def decode(line: bytes) -> Any:
    """json.loads of one line (bytes); ValueError if it is not one JSON value."""
    text = line.decode("utf-8").strip()
    if make_scanner is None:
        import json

        return json.loads(text)
    try:
        value, end = make_scanner(_Decoding)(text, 0)  # type: ignore[arg-type]  # it reads only _Decoding's attributes
    except StopIteration:
        raise ValueError("not JSON") from None
    except Exception:  # noqa: BLE001  _json reports some errors through json.decoder, not imported here
        import json

        return json.loads(text)  # raises the ValueError json.loads raises
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value
