"""Every action octopanel knows, built into one registry by build_registry()."""

from octopanel.actions import files, gcode, info, job, motion, panel, system, temps
from octopanel.actions.registry import Registry

MODULES = (info, system, gcode, job, motion, temps, files, panel)


def build_registry() -> Registry:
    """A fresh registry holding every action (no module-level registry: two daemons may share a process)."""
    registry = Registry()
    for module in MODULES:
        module.register(registry)
    return registry
