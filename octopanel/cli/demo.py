"""`octopanel demo`: a guided tour of the 8xxx commands, then of the panel, on a local OctoPrint or Klipper."""

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from octopanel.cli.demo_printer import ENV_KEYS, CliStep, DemoPrinter, OctoPrintDemo
from octopanel.cli.softpanel import SoftPanelError
from octopanel.sandbox.klipper import KlipperSimError
from octopanel.sandbox.virtualprinter import VirtualPrinterError

INTERRUPTED = 130  # cli.main's exit code after Ctrl-C; it swallows the KeyboardInterrupt itself


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="octopanel demo",
        description=(
            "Start a throw-away OctoPrint 1.11.8 with its Virtual Printer (or Moonraker and Klipper on a "
            "simulated printer) on 127.0.0.1 and run a short tour of octopanel commands, then of the panel, "
            "showing the G-code each one made the printer receive."
        ),
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the server running afterwards (until Ctrl-C) to try commands yourself"
    )
    parser.add_argument(
        "--tour",
        choices=("all", "cli", "panel"),
        default="all",
        help="which tour: the 8xxx commands (cli), the panel daemon driven by a software keypad (panel), or both",
    )
    parser.add_argument(
        "--backend",
        choices=tuple(PRINTERS),
        default="octoprint",
        help="which printer to start: OctoPrint's Virtual Printer (default) or Klipper behind Moonraker",
    )
    parser.add_argument(
        "--keypad",
        action="store_true",
        help="no tour: this terminal becomes the panel, on the Virtual Printer (octopanel keypad --virtual)",
    )
    return parser.parse_args(argv)


def run_step(printer: DemoPrinter, main: Callable[..., int], step: CliStep) -> str | None:
    """Run one command in-process and print it, its output, what the printer received and the verdict; return
    what went wrong (None: it worked)."""
    print(f"$ 8{shlex.join(step.words)}", flush=True)
    mark = printer.mark()
    code = main(list(step.words), prog="octopanel")
    sys.stdout.flush()
    if code == INTERRUPTED:
        raise KeyboardInterrupt
    if code == 0 and step.after is not None:
        step.after()
    sent = printer.settle(mark)
    problem = f"exit code {code}" if code != 0 else step.expect(sent) if step.expect is not None else None
    print(f"  → printer received: {printer.shown(sent)}")
    status = printer.status()  # after expect(), which waits for a slow effect
    if status is not None:
        print(f"  → printer state: {status}")
    print(f"  ✗ {problem}\n" if problem else "  ✓\n", flush=True)
    return problem


def tour(printer: DemoPrinter) -> int:
    from octopanel.cli import main  # imported late: the demo module must load even while the CLI is broken

    print("=== The commands: each step runs exactly as 8<command> would ===\n", flush=True)
    steps = printer.cli_tour()
    failed = [shlex.join(s.words) for s in steps if run_step(printer, main, s) is not None]
    if failed:
        print(f"{len(failed)} of {len(steps)} steps failed: " + ", ".join(failed), file=sys.stderr)
    else:
        print(f"All {len(steps)} steps worked.")
    return 1 if failed else 0


def klipper() -> DemoPrinter:
    from octopanel.cli.demo_klipper import KlipperDemo

    return KlipperDemo()


PRINTERS: dict[str, Callable[[], DemoPrinter]] = {"octoprint": OctoPrintDemo, "moonraker": klipper}


def keep_running(printer: DemoPrinter) -> None:
    print("\n" + printer.keep_text() + "\nPress Ctrl-C to stop it and delete its files.", flush=True)
    while True:
        time.sleep(3600)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # stop the server on SIGTERM too, through the same finally


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tour; 0 if every step worked, 1 if one failed or the printer would not start, 130 on Ctrl-C."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.keypad:
        from octopanel.cli import keypad

        return keypad.main(["--virtual"])
    saved_env = {k: os.environ.get(k) for k in ENV_KEYS}
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal() works only there
    previous_handler = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    printer = PRINTERS[args.backend]()
    try:
        print(f"Starting a local {printer.title}…", flush=True)
        started = time.monotonic()
        printer.start()
        print(f"It is up at {printer.url} ({time.monotonic() - started:.1f} s).\n", flush=True)
        for key, value in printer.env().items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        code = tour(printer) if args.tour in ("all", "cli") else 0
        if args.tour in ("all", "panel"):
            from octopanel.cli import demo_panel

            print(flush=True)
            code = demo_panel.tour(printer) or code
        if args.keep:
            keep_running(printer)
        return code
    except (
        VirtualPrinterError,
        KlipperSimError,
        SoftPanelError,
        OSError,
    ) as exc:  # OSError includes TimeoutError and requests' errors
        print(f"octopanel demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return INTERRUPTED
    finally:
        printer.stop()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":
    sys.exit(main())
