#!/usr/bin/env bash
# The test command (README "Quick start", and what .ci/run calls).
# Creates .venv with the package, its test extras and the LiteLLM oracle, installs the Debian
# packages the suite needs when run as root (redis-server, docker.io,
# busybox-static, mmdebstrap), runs the gates (lint, format, types), then the whole
# suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# The test and dev extras plus the pinned LiteLLM oracle (differential tests and the real
# proxy `verify --against-proxy` is tested against). Without it those tests skip, except
# with CI=true.
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,dev,oracle]'
# LiteLLM reads its bundled model map instead of fetching one: the tests touch no network
export LITELLM_LOCAL_MODEL_COST_MAP=True
if [ "$(id -u)" = 0 ]; then
  missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  { [ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1; } || missing+=(busybox-static)
  # The real PostgreSQL image of the decommission tests is built from Debian packages.
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# Gates: each fails the run before any test starts.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict layra_migrate migrations
exec .venv/bin/python -m pytest "$@"
