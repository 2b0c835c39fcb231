#!/bin/sh
# Install everything the test suite needs (Debian packages, a venv with octopanel and its test extra),
# then run the whole suite. Usage: ./test.sh [pytest arguments]
set -eu
cd "$(dirname "$0")"
. scripts/deps.sh
"$VENV/bin/python" -m pip install -q -e ".[test]"
exec "$VENV/bin/python" -m pytest "$@"
