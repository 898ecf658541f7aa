#!/usr/bin/env bash
# Runs the whole test suite (unit, handler, real-TorchServe integration, every shipped config).
#   bash scripts/test.sh [PYTEST ARGS...]      e.g. -m "not slow" for a quick run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install.sh
exec .venv/bin/python -m pytest "$@"
