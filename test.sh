#!/bin/sh
# Install everything the test suite needs (Debian packages, a venv with octopanel and its test extra),
# then run the whole suite; the kernel tests (tests/kernel, in QEMU, about 4 minutes) come last.
# Usage: ./test.sh [pytest arguments]      KERNEL_VM=0 ./test.sh -m "not kernel": without them
# CHART_CHROMIUM=1 (the default here): scripts/deps.sh also installs the Chromium tests/test_chart.py renders with
set -eu
cd "$(dirname "$0")"
KERNEL_VM=${KERNEL_VM:-1}
CHART_CHROMIUM=${CHART_CHROMIUM:-1}
. scripts/deps.sh
"$VENV/bin/python" -m pip install -q -e ".[test]"
exec "$VENV/bin/python" -m pytest "$@"
