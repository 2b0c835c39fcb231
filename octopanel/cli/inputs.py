"""`octopanel devices | events | record`: the input devices there are, their events live, recording them."""

import os
import stat
import sys
from collections.abc import Callable, Sequence

from octopanel.cli.panel import parse, parser_for, replay_manager, run_command
from octopanel.errors import UsageError


def list_devices(argv: Sequence[str] | None) -> int:
    parse(parser_for("devices", "list input devices: name, vid:pid, phys, by-id path, capabilities"), argv)
    from octopanel.input.discovery import print_devices

    return print_devices(sys.stdout)


def events(argv: Sequence[str] | None) -> int:
    parser = parser_for("events", "print input events live as ready-to-paste keymap lines")
    parser.add_argument(
        "device",
        nargs="?",
        default="*",
        help="name glob, vid:pid, event node, or a recording or FIFO of raw events (default: all)",
    )
    args = parse(parser, argv)
    from octopanel.input.devices import DeviceManager, EndOfReplay
    from octopanel.input.devicespec import DeviceSpec
    from octopanel.input.discovery import INPUT_DIR
    from octopanel.input.keynames import key_name

    ended: list[str] = []

    def change(label: str, present: bool, error: Exception | None = None) -> None:
        if isinstance(error, EndOfReplay):
            ended.append(label)
        else:
            print(f"# {label}: {'connected' if present else f'lost ({error})'}", flush=True)

    mode = os.stat(args.device).st_mode if os.path.exists(args.device) else 0
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):  # a recording is read at once; a FIFO as events come
        manager = replay_manager(args.device, 0, stat.S_ISFIFO(mode), change)
    elif not os.path.isdir(INPUT_DIR):
        print(
            f"octopanel events: no input devices: {INPUT_DIR} does not exist (give a recording or FIFO "
            "of raw events as a path, or see octopanel devices)",
            file=sys.stderr,
        )
        return 1
    else:
        manager = DeviceManager([DeviceSpec.parse(args.device, grab=False)], on_change=change)
    import selectors

    from evdev import ecodes

    sel = selectors.DefaultSelector()
    manager.rescan()
    print("# press keys or turn knobs; Ctrl-C to stop", flush=True)
    generation: int | None = None
    try:
        while not ended:
            if manager.generation != generation:  # a reopened device may reuse an fd number: register afresh
                generation = manager.generation
                for fd in list(sel.get_map()):
                    sel.unregister(fd)
                for fd in manager.fds():
                    sel.register(fd, selectors.EVENT_READ)
            for key, _ in sel.select(1.0):
                for label, evs in manager.handle_readable(key.fd):
                    for ev in evs:
                        if ev.type == ecodes.EV_KEY and ev.value == 1:
                            print(f"{key_name(ev.code)}: msg {key_name(ev.code)}   # {label}", flush=True)
                        elif ev.type == ecodes.EV_REL and not ecodes.REL[ev.code].endswith("HI_RES"):  # type: ignore[union-attr]  # REL names are single strings
                            print(
                                f"# rotary: {{{ecodes.REL[ev.code]}: jog z={{step}}}}   # {label} value {ev.value}",
                                flush=True,
                            )
            manager.tick(__import__("time").monotonic())
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        manager.close()


def record(argv: Sequence[str] | None) -> int:
    parser = parser_for("record", "record raw input events (the bytes of /dev/input/eventN) to a file")
    parser.add_argument("device", help="event node path (/dev/input/by-id/...-event-kbd), vid:pid or name glob")
    parser.add_argument("file")
    args = parse(parser, argv)
    from octopanel.input.devices import find_devices
    from octopanel.input.replay import record as record_events

    if not os.path.exists(args.device):
        nodes = find_devices(args.device)
        if len(nodes) != 1:
            found = ", ".join(n.path for n in nodes) or "none"
            raise UsageError(
                f"'{args.device}' must name exactly one event node (found: {found}); see octopanel devices"
            )
        args.device = nodes[0].path
    print(f"recording {args.device} to {args.file}; Ctrl-C to stop", file=sys.stderr)
    try:
        written = record_events(args.device, args.file)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        raise UsageError(f"cannot record {args.device}: {exc.strerror}") from None
    print(f"{written} bytes recorded", file=sys.stderr)
    return 0


COMMANDS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "devices": list_devices,
    "events": events,
    "record": record,
}


def main(name: str, argv: Sequence[str] | None) -> int:
    return run_command(COMMANDS[name], name, argv)
