#!/usr/bin/env bash
# Runs the whole test suite: tests/{unit,handler,integration,docker,swarm} (docs/tests.md).
#   bash scripts/test.sh [PYTEST ARGS...]   e.g. -m "not docker" for the quick run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install.sh
# A full disk fails hundreds of tests with "No space left on device": say so first.
free_gb=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "$free_gb" -lt 10 ]; then
    echo "[test] warning: ${free_gb} GB free under ${TMPDIR:-/tmp}; the suite needs about 10 GB" \
         "once its Docker images are built, their first build about 40 GB more" \
         "('docker system df' shows what images and build cache hold)" >&2
fi
exec .venv/bin/python -m pytest "$@"
