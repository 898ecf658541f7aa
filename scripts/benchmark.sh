#!/usr/bin/env bash
# Served vs in-process throughput and latency of the demo models (and the end-to-end
# archive), on a real TorchServe on loopback ports: tools/benchmark.py, whose --help lists
# the options (--shared: the shared-CPU study). Writes benchmarks/<NAME>.{md,json,png}.
#   bash scripts/benchmark.sh [--models crnn dbnet ocr] [--batch-sizes 1 4 8] [--shared]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install.sh
exec .venv/bin/python -u tools/benchmark.py "$@"
