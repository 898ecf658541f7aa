#!/usr/bin/env bash
# Serve a Triton model repository (written by mmocr2torchserve.py --format triton) with
# Triton Inference Server from the nvidia-pytriton wheel that scripts/install.sh installs:
#
#   bash scripts/triton.sh REPOSITORY [TRITONSERVER ARGS...]   e.g. --http-port 8000
#
# HTTP on 8000, gRPC on 8001, metrics on 8002 unless the arguments move them; Ctrl-C stops it.
# mmocr_serve_tools/triton.py says what it prepares (the backend stub, the stub's path).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: bash scripts/triton.sh REPOSITORY [TRITONSERVER ARGS...]" >&2; exit 2; }
REPOSITORY="$(realpath "$1")"
shift
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m mmocr_serve_tools.triton "$REPOSITORY" "$@"
