#!/usr/bin/env bash
# Quick start, step 1: set up .venv and run the whole four-phase job against a
# sandbox it starts itself (see layra_migrate/sandbox/run.py). Leaves nothing running.
# Options go to the job: --users N, --keep, --workdir DIR, --no-private-engine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[sandbox]'
# Decommission and restore need a Docker engine. Without a running one, the job starts
# a private dockerd as root (own socket and folders, no bridge, no iptables), as the
# tests do; as root on Debian/Ubuntu it installs what that needs first, unless
# LAYRA_DEMO_NO_INSTALL=1. Otherwise the job says plainly why that step is skipped.
if [ "$(id -u)" = 0 ] && [ -z "${DOCKER_HOST:-}" ] && [ -z "${LAYRA_DEMO_NO_INSTALL:-}" ] \
   && command -v apt-get >/dev/null 2>&1; then
  missing=()
  command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
  { [ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1; } || missing+=(busybox-static)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages for the Docker phase: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
exec .venv/bin/python -m layra_migrate.sandbox "$@"
