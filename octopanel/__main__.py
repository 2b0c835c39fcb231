"""`python -m octopanel ...` runs the octopanel command."""

import sys

from octopanel.cli import main

sys.exit(main(prog="octopanel"))
