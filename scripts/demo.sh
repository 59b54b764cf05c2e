#!/usr/bin/env bash
# Quick start, step 1: set up .venv and run the whole four-phase job against a
# sandbox it starts itself (see layra_migrate/sandbox/run.py). Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[sandbox]'
exec .venv/bin/python -m layra_migrate.sandbox "$@"
