#!/usr/bin/env bash
# Served vs in-process throughput and latency for DBNet r18 and CRNN (random weights), on
# a real TorchServe on loopback ports. Writes benchmarks/<cpu|gpu>.{md,json,png}.
#   bash scripts/benchmark.sh [--duration 15] [--batch-sizes 1 4 8] [--concurrency 1 4 8 16]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install.sh
exec .venv/bin/python -u tools/benchmark.py "$@"
