"""`octopanel run | check`: the panel daemon and its keymap check; the helpers every `octopanel NAME` shares."""

import argparse
import logging
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octopanel.errors import OctopanelError, UsageError

if TYPE_CHECKING:
    from octopanel.actions.registry import Registry
    from octopanel.input.devices import DeviceManager
    from octopanel.panel.keymap import Keymap
    from octopanel.printers.backend import Backend
    from octopanel.settings import Settings

KEYMAP_CANDIDATES = ("/etc/octopanel/keymap.yaml",)


def default_keymap() -> str:
    env = os.environ.get("OCTOPANEL_KEYMAP")
    if env:
        return env
    user = Path(os.path.expanduser("~/.config/octopanel/keymap.yaml"))
    for path in (user, *map(Path, KEYMAP_CANDIDATES)):
        if path.is_file():
            return str(path)
    from octopanel.datafiles import shipped_path

    return str(shipped_path("etc/keymap.yaml") or "/etc/octopanel/keymap.yaml")


def default_control_path() -> str | None:
    """The socket in the first of fast.runtime_dirs() we may use (/run/octopanel only if writable)."""
    from octopanel.cli.fast import SOCKET_NAME, SYSTEM_RUNTIME_DIR, runtime_dirs

    base = next((d for d in runtime_dirs() if d != SYSTEM_RUNTIME_DIR or os.access(d, os.W_OK)), None)
    return os.path.join(base, SOCKET_NAME) if base else None


def parser_for(name: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"octopanel {name}", description=description)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """argparse, but a usage error is a UsageError (exit 2, one line), never argparse's own exit."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code:
            raise UsageError(f"see octopanel {parser.prog.split()[-1]} -h") from None
        raise


def stderr_is_journal() -> bool:
    """True when stderr is the stream systemd connected to journald: JOURNAL_STREAM names its device and inode.

    The variable alone is not enough (systemd.exec(5)): a terminal started from a systemd unit passes it on."""
    try:
        dev, ino = (int(part) for part in os.environ["JOURNAL_STREAM"].split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (KeyError, ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO
    handler: logging.Handler | None = None
    if stderr_is_journal():
        try:
            from systemd.journal import JournalHandler

            handler = JournalHandler(SYSLOG_IDENTIFIER="octopanel")
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def load_keymap(path: str, settings: "Settings | None" = None) -> "tuple[Keymap, Registry, Settings]":
    from octopanel import settings as settings_mod
    from octopanel.actions import build_registry
    from octopanel.panel import keymap

    settings = settings or settings_mod.load()
    registry = build_registry()
    return keymap.load(path, registry, settings.limits), registry, settings


def check(argv: Sequence[str] | None) -> int:
    parser = parser_for("check", "validate a keymap (the same checks `octopanel run` makes at start)")
    parser.add_argument("file", nargs="?", default=None)
    args = parse(parser, argv)
    path = args.file or default_keymap()
    km, _registry, _settings = load_keymap(path)
    count = sum(len(b) for b in km.bindings.values()) + sum(len(b) for b in km.rotary.values())
    print(f"{path}: OK ({count} bindings, {len(km.modes)} modes, {len(km.devices)} device specs)")
    return 0


def run(argv: Sequence[str] | None) -> int:
    parser = parser_for("run", "run the control panel: keypads and jog wheels → OctoPrint")
    shown = default_keymap().replace("%", "%%")  # the file run would read now: $OCTOPANEL_KEYMAP, ~/.config, /etc
    parser.add_argument("--keymap", default=None, help=f"keymap file (default: {shown})")
    parser.add_argument("--replay", help="read a recording or FIFO of raw input events instead of devices")
    parser.add_argument("--speed", type=float, default=None, help="replay speed factor (0: as fast as possible)")
    parser.add_argument(
        "--live",
        action="store_true",
        help="--replay names a FIFO written as events happen: read it like a device, unpaced",
    )
    parser.add_argument("--dry-run", action="store_true", help="print gesture → action → request, send nothing")
    parser.add_argument("--dry-run-state", default="idle", help="printer state assumed by --dry-run")
    parser.add_argument(
        "--control",
        default=None,
        help="control socket path (default: runtime directory; none with --dry-run or --replay)",
    )
    parser.add_argument("--no-control", action="store_true", help="no control socket")
    parser.add_argument("--control-group", default=None, help="group owning the control socket")
    parser.add_argument("--url")
    parser.add_argument("--backend", help="octoprint, moonraker (Klipper) or auto: ask the URL once (default)")
    parser.add_argument(
        "--api-key",
        help="OctoPrint API key; visible to every user through ps: prefer "
        "api_key_file: in the config file, OCTOPRINT_API_KEY, or the systemd credential "
        "octoprint-api-key (LoadCredential=)",
    )
    parser.add_argument("--config")
    args = parse(parser, argv)
    setup_logging(args.verbose)
    from octopanel import settings as settings_mod
    from octopanel.actions.invoke import Context
    from octopanel.daemon.loop import Daemon
    from octopanel.daemon.notify import Notifier

    settings = settings_mod.load({"url": args.url, "api_key": args.api_key, "backend": args.backend}, args.config)
    settings_mod.print_warnings(settings)
    path = args.keymap or default_keymap()
    km, registry, settings = load_keymap(path, settings)
    if args.dry_run:
        from octopanel.printers.dryrun import DryRunClient

        client: Backend = DryRunClient(args.dry_run_state, settings.min_extrude_temp)
    else:
        from octopanel.printers.select import make_client

        client = make_client(settings, max(0, args.verbose - 1))
    ctx = Context(client=client, settings=settings)
    if args.no_control:
        control = None
    elif args.control or not (args.dry_run or args.replay):
        control = args.control or default_control_path()
    else:  # a rehearsal never takes the service's socket (`sudo octopanel run --replay s.bin --dry-run`)
        control = None
        logging.getLogger("octopanel").info("--dry-run/--replay: no control socket unless --control PATH")
    daemon = Daemon(
        km,
        path,
        registry,
        ctx,
        devices_factory(args),
        Notifier(),
        control,
        args.control_group,
        exit_at_end=bool(args.replay),
    )
    if args.dry_run:
        daemon.dry_run = True
        daemon.dispatch.trace = daemon.executor.trace = lambda text: print(text, flush=True)
    daemon.install_signals()
    logging.getLogger("octopanel").info("octopanel running with %s", path)
    return daemon.run()


def devices_factory(args: argparse.Namespace) -> "Callable[[Any, Callable[..., None]], DeviceManager]":
    from octopanel.input import devices

    if args.replay:
        if not os.path.exists(args.replay):
            raise UsageError(f"--replay: {args.replay} does not exist")
        if args.live and not stat.S_ISFIFO(os.stat(args.replay).st_mode):
            raise UsageError(f"--live: {args.replay} is not a FIFO (mkfifo it, then write events into it)")
        if args.live and args.speed is not None:
            raise UsageError("--live reads events as they come: --speed does not apply")
        speed = 1.0 if args.speed is None else args.speed
        return lambda _specs, on_change: replay_manager(args.replay, speed, args.live, on_change)
    if args.live or args.speed is not None:
        raise UsageError(f"{'--live' if args.live else '--speed'} needs --replay")
    return lambda specs, on_change: devices.DeviceManager(specs, on_change=on_change)


def replay_manager(path: str, speed: float, live: bool, on_change: Callable[..., None]) -> "DeviceManager":
    """A DeviceManager over one recording or FIFO, as if it were a device that is always plugged in."""
    from octopanel.input import devices
    from octopanel.input.discovery import DeviceInfo

    info = DeviceInfo(path=path, name=os.path.basename(path))
    return devices.DeviceManager(
        [devices.DeviceSpec(path=path)],
        lister=lambda: [info],
        opener=lambda p: devices.ReplaySource(p, speed=speed, live=live),
        on_change=on_change,
        watch_dir=None,
    )


COMMANDS: dict[str, Callable[[Sequence[str] | None], int]] = {"run": run, "check": check}


def run_command(command: Callable[[Sequence[str] | None], int], name: str, argv: Sequence[str] | None) -> int:
    """One `octopanel NAME` command: its error as one line `octopanel NAME: ...` and its exit code."""
    try:
        return command(argv)
    except OctopanelError as exc:
        print(f"octopanel {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def main(name: str, argv: Sequence[str] | None) -> int:
    return run_command(COMMANDS[name], name, argv)
