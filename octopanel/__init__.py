"""octopanel: drive an OctoPrint printer from a shell, a keypad or a jog wheel."""

__version__ = "0.1.0"
