#!/usr/bin/env bash
# The main job on a built-in default: install the stack, convert a model, start TorchServe,
# send a demo image, print the answer, stop TorchServe.
#
#   bash scripts/demo.sh [CONFIG [CHECKPOINT]]
#
# CONFIG defaults to DBNet r18 (shipped with mmocr). Without CHECKPOINT, one with RANDOM
# weights is made locally (no weights can be downloaded): the answer shows the format only.
# Environment: MODEL_NAME (default dbnet or crnn), IMAGE (default a demo image),
# KEEP_SERVING=1 leaves TorchServe running afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/install.sh
# shellcheck disable=SC1091
source .venv/bin/activate

CONFIG="${1:-textdet/dbnet/dbnet_r18_fpnc_1200e_icdar2015.py}"
CHECKPOINT="${2:-}"
case "$CONFIG" in
    *textrecog*) NAME="${MODEL_NAME:-crnn}"; IMAGE="${IMAGE:-demo/demo_text_recog.jpg}" ;;
    *) NAME="${MODEL_NAME:-dbnet}"; IMAGE="${IMAGE:-demo/demo_text_det.jpg}" ;;
esac

echo "[demo] config: $CONFIG"
if [ -z "$CHECKPOINT" ]; then
    CHECKPOINT="work/$(basename "$CONFIG" .py)_random.pth"
    python tools/make_random_checkpoint.py "$CONFIG" "$CHECKPOINT"
    echo "[demo] NOTE: no checkpoint given, so $CHECKPOINT holds RANDOM weights:"
    echo "[demo]       the answer below shows the wire format, not real detections or text."
fi

echo "[demo] converting to checkpoints/$NAME.mar"
python tools/deployment/mmocr2torchserve.py "$CONFIG" "$CHECKPOINT" \
    --output-folder checkpoints --model-name "$NAME" --force

echo "[demo] starting TorchServe (inference on :8080, management on 127.0.0.1:8081)"
mkdir -p logs
torchserve --start --ncs --model-store ./checkpoints --models "$NAME=$NAME.mar" \
    --ts-config config.properties >logs/torchserve.out 2>&1
if [ "${KEEP_SERVING:-0}" != "1" ]; then
    trap 'echo "[demo] stopping TorchServe"; torchserve --stop >/dev/null' EXIT
fi

printf '[demo] waiting for a worker'
for _ in $(seq 300); do
    if curl -sf "http://127.0.0.1:8081/models/$NAME" 2>/dev/null | grep -q '"status": "READY"'; then
        break
    fi
    printf '.'
    sleep 1
done
echo
curl -sf "http://127.0.0.1:8081/models/$NAME" | grep -q '"status": "READY"' || {
    echo "[demo] TorchServe did not get a worker ready; last log lines:" >&2
    tail -n 40 logs/torchserve.out >&2 || true
    exit 1
}

echo "[demo] curl http://127.0.0.1:8080/predictions/$NAME -T $IMAGE"
curl -sS --fail-with-body "http://127.0.0.1:8080/predictions/$NAME" -T "$IMAGE"
echo
