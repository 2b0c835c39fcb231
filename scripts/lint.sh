#!/bin/sh
# Lint, format check and type check: ruff (rules in pyproject.toml) and mypy on the package, from the `lint` extra,
# installed into the test venv that ./test.sh made. CI runs it after the suite; a finding fails CI.
set -eu
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/python" -m pip install -q -e ".[test,lint]"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"
