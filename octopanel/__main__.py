"""`python -m octopanel ...` runs the octopanel command."""

import sys

from .cli import main

sys.exit(main(prog="octopanel"))
