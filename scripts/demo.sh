#!/usr/bin/env bash
# The main job on a built-in default: install the stack, convert a model, start TorchServe,
# send a demo image, print the answer, stop TorchServe.
#
#   bash scripts/demo.sh                      # the trained demo models, end to end
#   bash scripts/demo.sh CONFIG [CHECKPOINT]  # any detector or recognizer config
#
# With no arguments, the demo detector and recognizer in demo/models/ (trained here on
# rendered text, see demo/models/README.md) become one end-to-end archive, which reads
# demo/demo_page.jpg. With CONFIG (a file, or a path under mmocr's shipped configs) but no
# CHECKPOINT, one with RANDOM weights is made locally (no weights can be downloaded): the
# answer shows the format only.
# Environment: MODEL_NAME (default ocr, dbnet or crnn), IMAGE (default a demo image),
# KEEP_SERVING=1 leaves TorchServe running afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/install.sh
# shellcheck disable=SC1091
source .venv/bin/activate

if [ $# -eq 0 ]; then
    NAME="${MODEL_NAME:-ocr}"
    IMAGE="${IMAGE:-demo/demo_page.jpg}"
    echo "[demo] the demo models in demo/models/: DBNet and CRNN trained on rendered text"
    echo "[demo] converting both to checkpoints/$NAME.mar (detect, crop, recognise)"
    python tools/deployment/mmocr2torchserve.py demo/models/dbnet_demo.py \
        demo/models/dbnet_demo.pth --recog-config demo/models/crnn_demo.py \
        --recog-checkpoint demo/models/crnn_demo.pth \
        --output-folder checkpoints --model-name "$NAME" --force
else
    CONFIG="$1"
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
fi

echo "[demo] starting TorchServe (inference on :8080, management on 127.0.0.1:8081)"
# Idle OpenMP threads sleep instead of spinning (docs/batching.md); a value you set is kept.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
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

if [ $# -eq 0 ]; then
    # a form field asks for the boxes in reading order (lines top to bottom, left to right)
    echo "[demo] curl http://127.0.0.1:8080/predictions/$NAME -F image=@$IMAGE -F order=reading"
    ANSWER="$(curl -sS --fail-with-body "http://127.0.0.1:8080/predictions/$NAME" \
        -F "image=@$IMAGE" -F order=reading)" || { echo "$ANSWER" >&2; exit 1; }
    echo "[demo] the lines it read:"
    python -c 'import json, sys
from mmocr_serve.results import reading_lines
items = json.loads(sys.argv[1])["result"]
for line in reading_lines(items, lambda item: item["box"]):
    print("  " + " ".join(item["text"] for item in line))' "$ANSWER"
    echo "[demo] the JSON answer:"
else
    echo "[demo] curl http://127.0.0.1:8080/predictions/$NAME -T $IMAGE"
    ANSWER="$(curl -sS --fail-with-body "http://127.0.0.1:8080/predictions/$NAME" -T "$IMAGE")" || { echo "$ANSWER" >&2; exit 1; }
fi
echo "$ANSWER"
