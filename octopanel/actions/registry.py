"""The action registry: every action defined once, and the one parser for action lines."""

import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from octopanel import values
from octopanel.actions.parser import REQUIRED, parse_args
from octopanel.errors import UsageError
from octopanel.printers.backend import STATES

CONNECTED = STATES - {"disconnected", "error"}
MOTION_OK = frozenset({"idle", "paused"})
ANY = STATES
# The printer backends (printers.backend.Backend.kind) and their names for people.
BACKENDS = {"octoprint": "OctoPrint", "moonraker": "Klipper (Moonraker)"}
EVERY_BACKEND = frozenset(BACKENDS)
OCTOPRINT_ONLY = frozenset({"octoprint"})


Bound = float | str | None  # a number, a settings limit's name, or '-name' for its negation


# Typed NamedTuples, not dataclasses: `import dataclasses` (inspect, ast, dis…) costs ~5 ms of every
# in-process command, and `typing` is loaded anyway. Both are immutable records built once, at registration.
class Param(NamedTuple):
    """A typed parameter; minval/maxval are numbers or names of a settings limit.

    flag: e.g. "-q", a switch (or, with takes_value, an option) on the command line; rest: swallows every
    remaining positional word (G-code text, messages)."""

    name: str
    convert: Callable[[Any], Any] = values.to_float
    default: Any = REQUIRED
    minval: Bound = None
    maxval: Bound = None
    help: str = ""
    flag: str | None = None
    takes_value: bool = False
    rest: bool = False

    def parse(self, raw: Any, limits: dict[str, float]) -> Any:
        try:
            value = self.convert(raw)
        except ValueError as exc:
            raise UsageError(f"{self.name}: {exc}") from None
        if isinstance(value, values.Step):
            # A step is judged against the limits when it runs, counted from the current value; here only a
            # step larger than any value allowed (a typo) is refused.
            bounds = [abs(b) for b in (resolve_limit(self.minval, limits), resolve_limit(self.maxval, limits)) if b]
            if bounds and abs(value) > max(bounds):
                raise UsageError(f"{self.name}: a step of {values.fmt(value)} is larger than the limit {max(bounds):g}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = resolve_limit(self.minval, limits), resolve_limit(self.maxval, limits)
            problem = values.check_range(value, lo, hi)
            if problem:
                raise UsageError(f"{self.name}: {problem}")
        return value


def resolve_limit(bound: Bound, limits: dict[str, float]) -> float | None:
    """A bound is a number, a settings limit name, or '-name' for its negation."""
    if not isinstance(bound, str):
        return bound
    return -limits[bound[1:]] if bound.startswith("-") else limits[bound]


class Action(NamedTuple):
    """One action: its name, parameters, help, the printer states it may run in, and every property another
    module needs to treat it right (what merges, what is dangerous, ...): no module tests an action's name."""

    name: str
    run: Callable[..., Any]
    help: str
    group: str
    params: tuple[Param, ...] = ()
    states: frozenset[str] = ANY
    commands: tuple[str, ...] = ()  # the 8xxx names (without the 8); default: (name,)
    skip_when_not: bool = False  # outside `states`: say "nothing sent" and succeed (pause, resume)
    already: frozenset[str] = frozenset()  # with skip_when_not: states in which its effect already holds
    skip_word: str = "printing"  # with skip_when_not: what the printer is not, elsewhere ("not printing")
    # A backend with refuses_motion_when_busy (OctoPrint: 409) refuses it itself outside `states`, atomically,
    # in the request that does it (jog, home): no state is read first, only after a refusal, to say why.
    # With any other backend invoke() reads the state first, as for every action with `states`.
    backend_refuses: bool = False
    legacy: Callable[[list[str]], dict[str, Any] | None] | None = None  # 8control positional words to {param: ...}
    # (parameter, axis) pairs of per-unit distances (jog: x y z; ex: amount on e). Such calls merge while they
    # wait, the distances multiplied (conserving the total), and count in the physical jog backlog.
    moves: tuple[tuple[str, str], ...] = ()
    # Parameters that may be a relative step (values.Step: `settemp +5`, `babystep z=0.02`): calls giving a step
    # merge while they wait, the steps added up (five quick `settemp +5` send one +25); absolute values never.
    steps: tuple[str, ...] = ()
    panel_mode: bool = False  # changes the daemon's own panel mode: answered at once, never queued (mode)
    retries: bool = False  # retried while OctoPrint is unreachable, until pause_deadline_s: a runout pause lands
    dangerous: bool = False  # the panel needs a confirming gesture (hold or double), whatever the arguments
    danger: Callable[[dict[str, Any]], str | None] | None = None  # why these arguments need that gesture
    slow: bool = False  # polls for a long time (alarm, waitend)
    cli: bool = True  # False: panel-only (no 8xxx command), e.g. mode changes
    local: bool = False  # reads the caller's files, stdin or config: never delegated to the daemon
    offline: bool = False  # needs no OctoPrint connection (checkcfg): runs even with no URL or key set
    check: Callable[[dict[str, Any]], str | None] | None = None  # cross-parameter rule: an error text or None
    # The backends (BACKENDS) it has a meaning on; elsewhere it is a usage error (exit 2), nothing sent, and
    # `not_there` says why in the user's words ("OctoPrint connects to a serial port; Klipper has its own").
    backends: frozenset[str] = EVERY_BACKEND
    not_there: str = ""
    # (backend kind, run) pairs: how it is done on that backend instead of `run` (8reset on Klipper restarts
    # its firmware; there is no OctoPrint system command to run).
    variants: tuple[tuple[str, Callable[..., Any]], ...] = ()

    @property
    def command_names(self) -> tuple[str, ...]:
        return self.commands or (self.name,)

    def danger_of(self, args: dict[str, Any]) -> str | None:
        """None if a call with these arguments may run on a single press; else why it needs a hold or a
        double press: `danger` judged on the arguments, or the help text of an action `dangerous` by nature.
        ValueError (e.g. G-code that cannot be read) propagates."""
        reason = self.danger(args) if self.danger is not None else None
        return reason or (self.help if self.dangerous else None)

    def run_on(self, kind: str | None) -> Callable[..., Any]:
        """The function that does it on a backend of this kind: a variant, else `run`."""
        return dict(self.variants).get(kind, self.run) if kind is not None else self.run

    def refusal_on(self, kind: str) -> str | None:
        """None if it has a meaning on a backend of this kind, else a usage error's text saying why not."""
        if kind in self.backends:
            return None
        only = " and ".join(BACKENDS[k] for k in sorted(self.backends))
        why = f": {self.not_there}" if self.not_there else ""
        return f"{self.command_names[0]} works only with {only}, not {BACKENDS.get(kind, kind)}{why}; nothing sent"

    def mergeable(self, args: dict[str, Any]) -> bool:
        """Whether consecutive calls with these arguments may be combined into one, conserving the total:
        every call of a `moves` action, a `steps` action's calls that give a step."""
        return bool(self.moves) or any(isinstance(args.get(name), values.Step) for name in self.steps)

    def axes_of(self, args: dict[str, Any]) -> dict[str, float]:
        """{axis: signed mm} that a call with these arguments moves; {} for an action that moves nothing."""
        return {axis: float(args[name]) for name, axis in self.moves if args.get(name) is not None}

    @property
    def reads_state_first(self) -> bool:
        """Whether the state is read before running it, whatever the backend (the executor then reads it ahead;
        for a backend_refuses action on a backend that does not refuse, invoke() reads it itself)."""
        return self.states != ANY and not self.backend_refuses


class Call:
    """A parsed action line: the action and its converted arguments."""

    __slots__ = ("action", "args")

    def __init__(self, action: Action, args: dict[str, Any] | None = None) -> None:
        self.action, self.args = action, {} if args is None else args

    def __repr__(self) -> str:
        return f"Call({self.action.name!r}, {self.args!r})"

    @property
    def forced(self) -> bool:
        """Whether the line carries --force: a human's override at a shell, never from a keymap or socket."""
        return any(p.flag == "--force" and self.args.get(p.name) for p in self.action.params)

    @property
    def mergeable(self) -> bool:
        """See Action.mergeable."""
        return self.action.mergeable(self.args)

    def danger(self) -> str | None:
        """See Action.danger_of."""
        return self.action.danger_of(self.args)

    def __str__(self) -> str:
        words = [self.action.name] + [
            f"{k}={shlex.quote(values.fmt(v) if isinstance(v, float) else str(v))}" for k, v in self.args.items()
        ]
        return " ".join(words)


class Registry:
    """Holds every action by name and by 8xxx command name; registering twice is an error."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}
        self._commands: dict[str, Action] = {}

    def register(self, action: Action) -> Action:
        for table, keys in ((self._actions, [action.name]), (self._commands, action.command_names)):
            for key in keys:
                if key in table:
                    raise ValueError(f"action {key!r} is registered twice")
        self._actions[action.name] = action
        for key in action.command_names:
            self._commands[key] = action
        return action

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def command_names(self) -> list[str]:
        """The 8xxx names (without the 8) of every action that has one."""
        return [name for name, action in self._commands.items() if action.cli]

    def get(self, name: str) -> Action:
        """The action called `name` (octopanel name or 8xxx name), or UsageError with a hint."""
        action = self._actions.get(name) or self._commands.get(name)
        if action is None:
            names = set(self._actions) | set(self._commands)
            raise UsageError(f"unknown action '{name}'{values.suggest(name, names)}")
        return action

    def parse_line(self, line: str, limits: dict[str, float]) -> Call:
        """Parse 'jog z=5' or 'jog 0 0 5' into a Call (the keymap and control socket use this)."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot split {line!r}: {exc}") from None
        if not words:
            raise UsageError("empty action line")
        return self.parse(words[0], words[1:], limits)

    def parse(self, name: str, words: Sequence[str], limits: dict[str, float]) -> Call:
        """Parse the words after an action name into a Call; the single parser for every front end."""
        action = self.get(name)
        return Call(action, parse_args(action, words, limits))
