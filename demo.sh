#!/bin/sh
# Install octopanel (Debian packages it builds against, a venv) and run its guided demo against a local
# OctoPrint Virtual Printer: no printer needed. Usage: ./demo.sh [--keep] [--backend moonraker]
set -eu
cd "$(dirname "$0")"
. scripts/deps.sh
"$VENV/bin/python" -m pip install -q .
exec "$VENV/bin/octopanel" demo "$@"
