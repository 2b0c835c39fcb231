"""The printer backend seam: every implementation covers the protocol, and a backend that does not refuse motion
itself is still guarded (the Klipper case: Moonraker moves the head whenever told)."""

import inspect
import io

import pytest
from fakeprinter import FakeOctoPrint, FakePrinter

from octopanel import settings as settings_mod
from octopanel.actions import build_registry
from octopanel.actions.invoke import Context, invoke
from octopanel.actions.registry import BACKENDS
from octopanel.errors import SafetyError
from octopanel.printers.backend import Backend
from octopanel.printers.dryrun import DryRunClient
from octopanel.printers.moonraker.client import MoonrakerClient
from octopanel.printers.octoprint.client import Client

REGISTRY = build_registry()
SETTINGS = settings_mod.load(env={})
MEMBERS = sorted(name for name in dir(Backend) if not name.startswith("_"))
ATTRIBUTES = sorted(Backend.__annotations__)
IMPLEMENTATIONS = [Client, MoonrakerClient, DryRunClient, FakePrinter, FakeOctoPrint]


def parameters(function):
    return [(p.name, p.default) for p in list(inspect.signature(function).parameters.values())[1:]]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_every_backend_covers_the_protocol_with_its_signatures(implementation):
    """The fakes the tests drive and the real clients offer the same methods, taking the same parameters."""
    assert ATTRIBUTES == ["kind", "move_start_lag_s", "refuses_motion_when_busy", "server_name"]
    assert isinstance(getattr(implementation, "move_start_lag_s", None), float)
    assert isinstance(getattr(implementation, "refuses_motion_when_busy", None), bool)
    assert isinstance(getattr(implementation, "server_name", None), str)
    assert getattr(implementation, "kind", None) in BACKENDS
    missing = [m for m in MEMBERS if not callable(getattr(implementation, m, None))]
    assert not missing, f"{implementation.__name__} lacks {missing}"
    differ = {
        m: (parameters(getattr(implementation, m)), parameters(getattr(Backend, m)))
        for m in MEMBERS
        if parameters(getattr(implementation, m)) != parameters(getattr(Backend, m))
    }
    assert not differ, differ


def test_the_protocol_names_every_client_method_the_actions_use():
    """Actions reach the printer only through ctx.client: each method they call is in the protocol."""
    import pathlib
    import re

    root = pathlib.Path(inspect.getfile(Client)).parents[2]
    used = {m for path in root.rglob("*.py") for m in re.findall(r"ctx\.client\.([a-z_]+)", path.read_text())}
    assert used and used <= set(MEMBERS + ATTRIBUTES), used - set(MEMBERS + ATTRIBUTES)


class MovesWheneverTold(FakePrinter):
    """A backend that does not refuse motion itself (as Moonraker): it would move in any state."""

    refuses_motion_when_busy = False

    def _printhead(self):
        pass  # no refusal of its own


@pytest.mark.parametrize("line", ["jog z=1", "home"])
def test_a_backend_that_moves_whenever_told_is_guarded_by_the_state_read(line):
    """Before: jog and home skipped the state read (OctoPrint refuses them itself), so a backend that does
    not refuse would have moved the head mid-print."""
    printer = MovesWheneverTold(state="printing")
    ctx = Context(client=printer, settings=SETTINGS)
    with pytest.raises(SafetyError, match=r"refused: the printer is printing .*nothing sent"):
        invoke(REGISTRY.parse_line(line, SETTINGS.limits), ctx)
    assert printer.sent == []
    printer.state_name = "idle"
    invoke(REGISTRY.parse_line(line, SETTINGS.limits), ctx)
    assert len(printer.sent) == 1


def test_the_dry_run_refuses_a_jog_in_the_state_it_assumes():
    """`octopanel run --dry-run --assume printing` must show what the daemon would do: refuse, not 'would jog'."""
    out = io.StringIO()
    ctx = Context(client=DryRunClient(state="printing", out=out), settings=SETTINGS)
    with pytest.raises(SafetyError, match="jog refused: the printer is printing"):
        invoke(REGISTRY.parse_line("jog z=1", SETTINGS.limits), ctx)
    assert "POST" not in out.getvalue()


def test_moonraker_does_not_refuse_motion_so_every_move_reads_the_state_first():
    """Klipper slots a jog between a job's moves (no 409): the Moonraker backend must say so, else invoke()
    would skip the state read for jog and home."""
    assert MoonrakerClient.refuses_motion_when_busy is False
    assert MoonrakerClient.kind == "moonraker" and Client.kind == "octoprint"


def test_an_auto_backend_not_yet_detected_is_named_without_a_request():
    """The status line names the server while it is unreachable: that must not start a detection request
    (settings None: any attempt to detect would raise)."""
    from octopanel.printers.select import AutoBackend

    assert AutoBackend(None).server_name == "the printer's server"
