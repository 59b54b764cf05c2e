#!/usr/bin/env bash
# The test command (README "Quick start", and what .ci/run calls).
# Creates .venv with the package and its test extras, installs the Debian
# packages the suite needs when run as root (redis-server, docker.io,
# busybox-static), then runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
if [ "$(id -u)" = 0 ]; then
  missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  { [ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1; } || missing+=(busybox-static)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
exec .venv/bin/python -m pytest "$@"
