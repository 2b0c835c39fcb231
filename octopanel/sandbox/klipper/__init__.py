# Copyright (c) 2026 the octopanel authors. MIT licence (see LICENSE).
"""A real Moonraker and Klipper host (Kalico) on a simulated MCU, for the tests and the demo only."""

from octopanel.sandbox.klipper.control import KlipperRefused
from octopanel.sandbox.klipper.sim import KlipperSim
from octopanel.sandbox.klipper.venvs import KlipperSimError

__all__ = ["KlipperRefused", "KlipperSim", "KlipperSimError"]
