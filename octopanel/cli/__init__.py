"""Command line: `octopanel <action> ...` and `8<action> ...` → one registry action; output; exit codes."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: the fast path imports this package
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

    from _typeshed import SupportsWrite

    from octopanel.actions.registry import Registry

# Commands that are not printer actions; each is a module with main(argv) -> int, imported only when used.
META = {
    "demo": ("octopanel.cli.demo", "run a guided tour against a local virtual printer (no printer needed)"),
    "keypad": ("octopanel.cli.keypad", "use this terminal as the panel (--virtual: on a local Virtual Printer)"),
    "login": ("octopanel.printers.octoprint.login", "get an API key from OctoPrint's app-keys workflow and save it"),
    "run": ("octopanel.cli.panel", "run the control panel daemon (keypads, jog wheels, control socket)"),
    "check": ("octopanel.cli.panel", "validate a keymap file"),
    "devices": ("octopanel.cli.inputs", "list input devices"),
    "events": ("octopanel.cli.inputs", "print input events live as keymap lines"),
    "record": ("octopanel.cli.inputs", "record raw input events to a file, for --replay"),
    "chart": ("octopanel.cli.chart", "draw a keymap on its keys as an SVG, to print at actual size"),
    "install": ("octopanel.cli.install", "install the systemd service: user, /etc/octopanel, unit, udev rule"),
    "uninstall": ("octopanel.cli.install", "remove the service (--purge: /etc/octopanel too)"),
}
VALUE_FLAGS = {"--url": "url", "--api-key": "api_key", "--config": "config", "--backend": "backend"}
# Control characters but newline and tab, DEL and the C1 range (0x9b is a one-byte CSI on some terminals).
ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


class Escaped:
    """A text stream that writes control characters as \\x1b and so on: a file name, message or error text from
    OctoPrint must not move the cursor, retitle the window or hide what came before."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text.translate(ESCAPES))

    def __getattr__(self, name: str) -> Any:  # flush, isatty, buffer...: the stream's own
        return getattr(self.stream, name)


def split_globals(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Pull the global options out of argv, wherever they are (but never after `--`)."""
    opts: dict[str, Any] = {
        "verbose": 0,
        "json": False,
        "help": False,
        "url": None,
        "api_key": None,
        "config": None,
        "backend": None,
    }
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            rest.append(word)
            rest.extend(argv[i:])
            break
        if word in ("-h", "--help"):
            opts["help"] = True
        elif word == "-v":
            opts["verbose"] += 1
        elif word == "-vv":
            opts["verbose"] += 2
        elif word == "--json":
            opts["json"] = True
        elif word.split("=", 1)[0] in VALUE_FLAGS:
            key, eq, value = word.partition("=")
            if not eq:
                if i >= len(argv):
                    from octopanel.errors import UsageError

                    raise UsageError(f"{key} needs a value")
                value = argv[i]
                i += 1
            opts[VALUE_FLAGS[key]] = value
        else:
            rest.append(word)
    return opts, rest


def open_missing_streams() -> None:
    """A closed stdin, stdout or stderr (`8pause 2>&-` in a script) becomes /dev/null. Python leaves it
    None, which failed the command before anything was sent; and a socket opened later could take the
    free fd number and receive our output."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):  # in fd order: each reopens its own
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of `octopanel` and of every `8xxx` command; returns the exit code."""
    open_missing_streams()
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = os.path.basename(prog or sys.argv[0] or "octopanel")
    try:
        return run(argv, prog)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # errors.py is imported only here and on the in-process path: the fast path never needs it.
        from octopanel.errors import OctopanelError

        if isinstance(exc, OctopanelError):
            print(f"{prog}: {exc}", file=Escaped(sys.stderr))
            return exc.exit_code
        # An answer of an unexpected shape, or a bug: one line, not a traceback.
        if os.environ.get("OCTOPANEL_DEBUG"):
            raise
        print(
            f"{prog}: internal error: {type(exc).__name__}: {exc} (an unexpected answer from OctoPrint, or a "
            "bug; -vv shows the exchange, OCTOPANEL_DEBUG=1 the traceback)",
            file=Escaped(sys.stderr),
        )
        return 1


def script() -> None:
    """Entry point of the installed scripts: main(), then exit; a printer command skips Python's teardown.

    Tearing down the interpreter takes ~15 ms once requests is imported (an eighth of an in-process
    `8status`) and ~1.4 ms of a 20 ms one through the daemon. A printer command needs none of it: its
    session is closed and it starts no thread, so after flushing the output here it leaves with
    os._exit. The commands that do hold more (run, login, demo, install…) exit normally."""
    argv, prog = sys.argv[1:], os.path.basename(sys.argv[0] or "octopanel")
    code = main(argv, prog)
    if split_command(argv, prog)[2]:
        sys.exit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # as in main(): `8ls | head` is not an error
    except OSError as exc:
        print(f"{prog}: cannot write the output: {exc}", file=sys.stderr)
        code = code or 1
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


def split_command(argv: list[str], prog: str) -> tuple[str | None, list[str], bool]:
    """(name, the other words, whether it is a META command) for a command line; name None when it names none.

    `8jog` names its action itself; `octopanel` takes it from the line, where it may also be a META command."""
    if prog.startswith("8") and len(prog) > 1:
        return prog[1:], argv, False
    index = find_action(argv)
    if index is None:
        return None, argv, False
    return argv[index], argv[:index] + argv[index + 1 :], argv[index] in META


def run(argv: list[str], prog: str) -> int:
    name, rest, meta = split_command(argv, prog)
    if name is None:
        from octopanel.actions import build_registry
        from octopanel.cli.helptext import full_help

        opts, _ = split_globals(argv)
        print(full_help(build_registry()), file=sys.stdout if opts["help"] else sys.stderr)
        return 0 if opts["help"] else 2
    if meta:
        return meta_main(name, rest)
    if name != "help" and not os.environ.get("OCTOPANEL_NO_DAEMON"):
        from octopanel.cli import fast

        code = fast.run(name, rest, prog, Escaped(sys.stdout), Escaped(sys.stderr))
        if code is not None:
            return code
    from octopanel.actions import build_registry
    from octopanel.cli.helptext import command_help, full_help

    opts, words = split_globals(rest)
    registry = build_registry()
    if name == "help":
        print(command_help(registry.get(words[0])) if words else full_help(registry))
        return 0
    if opts["help"]:
        print(command_help(registry.get(name)))
        return 0
    return run_action(registry, name, words, opts, Escaped(sys.stdout), Escaped(sys.stderr))


def find_action(argv: Sequence[str]) -> int | None:
    """Index of the action word in `octopanel [options] ACTION ...`, skipping options and their values."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in VALUE_FLAGS:
            i += 2
            continue
        if not word.startswith("-"):
            return i
        i += 1
    return None


def run_action(
    registry: Registry,
    name: str,
    words: list[str],
    opts: dict[str, Any],
    out: SupportsWrite[str],
    err: SupportsWrite[str],
) -> int:
    """Run one action in-process; what it prints goes to `out` and `err` (Escaped streams)."""
    from octopanel import settings as settings_mod
    from octopanel.actions.invoke import Context, invoke
    from octopanel.errors import UsageError

    settings = settings_mod.load({k: opts[k] for k in ("url", "api_key", "backend")}, opts["config"])
    settings_mod.print_warnings(settings, err)
    call = registry.parse(name, words, settings.limits)  # every usage error is raised before any request
    if not call.action.cli:
        raise UsageError(f"'{call.action.name}' is a panel action: use it in keymap.yaml or on the control socket")
    client = None
    if not call.action.offline:
        from octopanel.printers.select import make_client

        client = make_client(settings, opts["verbose"])
    # client is None only for offline actions (checkcfg), which never use it
    ctx = Context(client=client, settings=settings, tty=sys.stderr.isatty())  # type: ignore[arg-type]
    try:
        result = invoke(call, ctx)
    finally:
        if client is not None:
            client.close()
    if opts["json"]:
        import json  # not at the top: `json` imports `re`, a third of the fast path's budget

        print(json.dumps(result.as_json(call.action.name), indent=2), file=out)
    elif result.text:
        print(result.text, file=out)
    return 0


def meta_main(name: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(META[name][0])
    # Modules serving several commands take the name.
    multi = ("octopanel.cli.panel", "octopanel.cli.inputs", "octopanel.cli.install")
    return module.main(name, argv) if META[name][0] in multi else module.main(argv)
