"""The help the command line prints: every action by group, one action's usage and bounds, the global options."""

from octopanel.actions.parser import REQUIRED, usage
from octopanel.actions.registry import ANY, BACKENDS, EVERY_BACKEND, Action, Registry
from octopanel.cli import META

GLOBAL_HELP = """\
global options (anywhere on the line):
  -h, --help          this help; `COMMAND -h` shows one command
  -v, -vv             print each request; -vv adds status and headers (the API key is redacted)
  --json              print the parsed JSON (data commands) or a JSON result
  --url URL           OctoPrint's or Moonraker's base URL (default: environment, config files)
  --backend NAME      octoprint, moonraker (Klipper) or auto: ask the URL (default; OCTOPANEL_BACKEND,
                      backend: in config.yaml)
  --api-key KEY       OctoPrint API key; every user sees it through ps: prefer api_key_file: in
                      ~/.config/octopanel/config.yaml, OCTOPRINT_API_KEY, or the systemd credential
                      octoprint-api-key (LoadCredential=)
  --config FILE       octopanel config file
exit codes: 0 ok, 1 printer refused / unreachable / key rejected, 2 usage or config error"""

COMMAND_GLOBALS = """\
global options: -v, -vv, --json, --url URL, --backend NAME, --api-key KEY, --config FILE (octopanel -h: more).
  --api-key is visible to every user through ps; prefer api_key_file: in ~/.config/octopanel/config.yaml,
  OCTOPRINT_API_KEY, or the systemd credential octoprint-api-key (LoadCredential=)"""


def full_help(registry: Registry) -> str:
    lines = ["usage: octopanel [options] ACTION [ARGS | key=value ...]   or   8ACTION [ARGS]", ""]
    groups: dict[str, list[Action]] = {}
    for action in (a for a in registry if a.cli):
        groups.setdefault(action.group, []).append(action)
    for group, actions in groups.items():
        lines.append(f"{group}:")
        for action in actions:
            names = " ".join("8" + c for c in action.command_names)
            only = (
                ""
                if action.backends == EVERY_BACKEND
                else f" [{' and '.join(BACKENDS[k] for k in sorted(action.backends))} only]"
            )
            lines.append(f"  {names:<24} {action.help}{only}")
        lines.append("")
    lines.append("octopanel only:")
    for name, (_module, help_) in META.items():
        lines.append(f"  octopanel {name:<14} {help_}")
    lines += ["", GLOBAL_HELP]
    return "\n".join(lines)


def command_help(action: Action) -> str:
    lines = [
        f"usage: {usage(action)}",
        f"       octopanel {action.name} " + " ".join(f"{p.name}=…" for p in action.params),
        "",
        action.help,
    ]
    if action.params:
        lines.append("")
    for p in action.params:
        bounds = []
        if p.minval is not None or p.maxval is not None:
            bounds.append(f"{p.minval if p.minval is not None else ''}..{p.maxval if p.maxval is not None else ''}")
        if p.default is not REQUIRED and p.default is not None:
            bounds.append(f"default {p.default}")
        extra = f" ({', '.join(bounds)})" if bounds else ""
        lines.append(f"  {p.flag or p.name:<12} {p.help}{extra}")
    if action.states != ANY:
        lines += ["", "runs only when the printer is " + " or ".join(sorted(action.states))]
    lines += ["", COMMAND_GLOBALS]
    return "\n".join(lines)
