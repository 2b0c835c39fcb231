"""`octopanel demo`: a guided tour of the 8xxx commands, then of the panel, against a local Virtual Printer."""

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from octopanel.cli.softpanel import SoftPanelError
from octopanel.sandbox.virtualprinter import VirtualPrinter, VirtualPrinterError


def connected(vp: VirtualPrinter) -> None:
    # `8connect` only asks OctoPrint to connect; the first temperature report follows 2 s later, and
    # until then OctoPrint has no readings (8gettemp would say "unknown"). A person typing waits too.
    vp.wait_state({"operational", "ready"}, timeout=20)
    vp.wait_temperatures(timeout=10)


def disconnected(vp: VirtualPrinter, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while vp.flags() and time.monotonic() < deadline:  # no flags at all: /api/printer answers 409
        time.sleep(0.05)


# (command words, what to wait for afterwards). Each step runs exactly as `8<command>` would.
TOUR = (
    (["connect"], connected),
    (["status"], None),
    (["home"], None),
    (["settemp", "200"], None),
    (["setbed", "60"], None),
    (["alarm", "t", "60"], None),  # the Virtual Printer heats at 10 °C/s: a few seconds
    (["gettemp"], None),
    (["jog", "10", "-5", "1"], None),
    (["fan", "on"], None),
    (["fan", "off"], None),
    (["msg", "Hello from octopanel"], None),
    (["beep"], None),
    (["settemp", "0"], None),
    (["setbed", "0"], None),
    (["disconnect"], disconnected),
)
INTERRUPTED = 130  # cli.main's exit code after Ctrl-C; it swallows the KeyboardInterrupt itself


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="octopanel demo",
        description=(
            "Start a throw-away OctoPrint 1.11.8 with its Virtual Printer on 127.0.0.1 and run a short "
            "tour of octopanel commands, showing the G-code each one made the printer receive."
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
        "--keypad",
        action="store_true",
        help="no tour: this terminal becomes the panel, on the Virtual Printer (octopanel keypad --virtual)",
    )
    return parser.parse_args(argv)


def run_step(
    vp: VirtualPrinter,
    main: Callable[..., int],
    words: Sequence[str],
    after: Callable[[VirtualPrinter], None] | None,
) -> int:
    """Run one command in-process and print it, its output and the G-code it caused; return its exit code."""
    print(f"$ 8{shlex.join(words)}", flush=True)
    mark = vp.mark()
    code = main(list(words), prog="octopanel")
    sys.stdout.flush()
    if code == INTERRUPTED:
        raise KeyboardInterrupt
    if code == 0 and after is not None:
        after(vp)
    sent = vp.settle(mark)
    print(
        f"  → printer received: {' | '.join(sent) if sent else '(nothing)'}"
        + ("" if code == 0 else f"   [exit code {code}]")
    )
    print()
    return code


def tour(vp: VirtualPrinter) -> int:
    from octopanel.cli import main  # imported late: the demo module must load even while the CLI is broken

    print("=== The commands: each step runs exactly as 8<command> would ===\n", flush=True)
    failed = [shlex.join(words) for words, after in TOUR if run_step(vp, main, words, after) != 0]
    if failed:
        print(f"{len(failed)} of {len(TOUR)} steps failed: " + ", ".join(failed), file=sys.stderr)
    else:
        print(f"All {len(TOUR)} steps worked.")
    return 1 if failed else 0


def keep_running(vp: VirtualPrinter) -> None:
    if not vp.flags():  # the CLI tour ends disconnected, the panel tour connected
        vp.connect()
    print(
        f"""
OctoPrint keeps running with its Virtual Printer connected. In another shell:

    export OCTOPRINT_URL={vp.url}
    export OCTOPRINT_API_KEY={vp.api_key}
    8status; 8jog 0 0 5; octopanel help

Web interface: {vp.url} (user admin, password {vp.password})
serial log:    {vp.serial_log}
Press Ctrl-C to stop it and delete its files.""",
        flush=True,
    )
    while True:
        time.sleep(3600)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # stop the server on SIGTERM too, through the same finally


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tour; 0 if every step worked, 1 if one failed or OctoPrint would not start, 130 on Ctrl-C."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.keypad:
        from octopanel.cli import keypad

        return keypad.main(["--virtual"])
    saved_env = {k: os.environ.get(k) for k in ("OCTOPRINT_URL", "OCTOPRINT_API_KEY")}
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal() works only there
    previous_handler = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    vp = VirtualPrinter()
    try:
        print("Starting a local OctoPrint 1.11.8 with its Virtual Printer…", flush=True)
        started = time.monotonic()
        vp.start()
        print(f"OctoPrint is up at {vp.url} ({time.monotonic() - started:.1f} s).\n", flush=True)
        os.environ["OCTOPRINT_URL"], os.environ["OCTOPRINT_API_KEY"] = vp.url, vp.api_key
        code = tour(vp) if args.tour in ("all", "cli") else 0
        if args.tour in ("all", "panel"):
            from octopanel.cli import demo_panel

            print(flush=True)
            code = demo_panel.tour(vp) or code
        if args.keep:
            keep_running(vp)
        return code
    except (VirtualPrinterError, SoftPanelError, OSError) as exc:  # OSError includes TimeoutError and requests' errors
        print(f"octopanel demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return INTERRUPTED
    finally:
        vp.stop()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_handler)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":
    sys.exit(main())
