"""Run by a Klipper venv's python (tests/test_klipper_gcode.py): how Klipper's own G-code dispatcher reads lines.

stdin: JSON [[command name, line], ...]. For each, a real klippy GCodeDispatch (on a stand-in printer) has a
handler registered under that name and runs the line; stdout: JSON [[command Klipper ran or None, its
parameters or the error], ...]."""

import json
import sys

from klippy import gcode as klippy_gcode


class Mutex:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Reactor:
    def mutex(self):
        return Mutex()


class Printer:
    """Just what GCodeDispatch asks of the printer while it reads lines."""

    def register_event_handler(self, *args):
        pass

    def get_start_args(self):
        return {}

    def get_reactor(self):
        return Reactor()

    def send_event(self, *args):
        pass

    def config_error(self, message):
        return ValueError(message)

    def get_state_message(self):
        return ("not ready", "")


def main():
    jobs = json.load(sys.stdin)
    dispatch = klippy_gcode.GCodeDispatch(Printer())
    seen = []
    for name in {name for name, _ in jobs}:
        dispatch.register_command(name, lambda gcmd: seen.append(gcmd))
    dispatch._handle_ready()
    answers = []
    for _name, line in jobs:
        seen.clear()
        try:
            dispatch._process_commands([line], need_ack=False)
        except Exception as exc:  # Klipper's own refusal ("Malformed command")
            answers.append([None, str(exc)])
            continue
        if seen:
            answers.append([seen[0].get_command(), dict(seen[0].get_command_parameters())])
        else:
            answers.append([None, "no handler ran"])
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
