#!/usr/bin/env bash
# Served vs in-process throughput and latency of DBNet r18 and CRNN (shipped configs,
# random weights) and the demo pair end to end, on a real TorchServe on loopback ports:
# tools/benchmark.py, whose --help lists the options (--shared: the shared-CPU study).
# Writes benchmarks/<NAME>.{md,json,png}.
#   bash scripts/benchmark.sh [--models crnn dbnet ocr] [--batch-sizes 1 4 8] [--shared]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install.sh
exec .venv/bin/python -u tools/benchmark.py "$@"
