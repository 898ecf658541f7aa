#!/usr/bin/env bash
# Soak test: 16 concurrent clients against a real TorchServe on loopback for 30 minutes
# (--duration SECONDS), failing on any error or on >10% growth of a worker's memory.
#   bash scripts/soak.sh [--model crnn|dbnet] [--duration 1800] [--concurrency 16]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install.sh
exec .venv/bin/python -u tools/soak.py "$@"
