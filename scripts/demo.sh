#!/usr/bin/env bash
# The main job on a built-in default: install the stack, convert a model, start TorchServe,
# send a demo image, print the answer, stop TorchServe.
#
#   bash scripts/demo.sh                      # the trained demo models, end to end
#   bash scripts/demo.sh CONFIG [CHECKPOINT]  # any detector or recognizer config
#   bash scripts/demo.sh --server triton ...  # the same on Triton Inference Server
#
# With no arguments, the demo detector and recognizer in demo/models/ (trained here on
# rendered text, see demo/models/README.md) become one end-to-end archive, which reads
# demo/demo_page.jpg. With CONFIG (a file, or a path under mmocr's shipped configs) but no
# CHECKPOINT, one with RANDOM weights is made locally (no weights can be downloaded): the
# answer shows the format only.
# Environment: MODEL_NAME (default ocr, dbnet or crnn), IMAGE (default a demo image),
# KEEP_SERVING=1 leaves the server running afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SERVER=torchserve
if [ "${1:-}" = "--server" ]; then
    SERVER="${2:-}"
    shift 2 || true
fi
case "$SERVER" in
    torchserve) FORMAT=(--output-folder checkpoints) ;;
    triton) FORMAT=(--format triton --output-folder checkpoints/triton) ;;
    *) echo "[demo] --server takes torchserve or triton, not '$SERVER'" >&2; exit 2 ;;
esac

bash scripts/install.sh
# shellcheck disable=SC1091
source .venv/bin/activate

if [ $# -eq 0 ]; then
    NAME="${MODEL_NAME:-ocr}"
    IMAGE="${IMAGE:-demo/demo_page.jpg}"
    echo "[demo] the demo models in demo/models/: DBNet and CRNN trained on rendered text"
    echo "[demo] converting both for $SERVER (detect, crop, recognise): ${FORMAT[*]}"
    python tools/deployment/mmocr2torchserve.py demo/models/dbnet_demo.py \
        demo/models/dbnet_demo.pth --recog-config demo/models/crnn_demo.py \
        --recog-checkpoint demo/models/crnn_demo.pth \
        "${FORMAT[@]}" --model-name "$NAME" --force
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
    echo "[demo] converting for $SERVER: ${FORMAT[*]}"
    python tools/deployment/mmocr2torchserve.py "$CONFIG" "$CHECKPOINT" \
        "${FORMAT[@]}" --model-name "$NAME" --force
fi

print_lines() {  # an end-to-end answer's lines in reading order
    python -c 'import json, sys
from mmocr_serve.results import reading_lines
items = json.loads(sys.argv[1])["result"]
for line in reading_lines(items, lambda item: item["box"]):
    print("  " + " ".join(item["text"] for item in line))' "$1"
}

if [ "$SERVER" = triton ]; then
    echo "[demo] starting Triton Inference Server (HTTP :8000, gRPC :8001, metrics :8002)"
    mkdir -p logs
    # this model alone, not other entries an earlier demo left in checkpoints/triton
    bash scripts/triton.sh checkpoints/triton --model-control-mode=explicit \
        --load-model="$NAME" >logs/tritonserver.out 2>&1 &
    TRITON_PID=$!
    if [ "${KEEP_SERVING:-0}" != "1" ]; then
        trap 'echo "[demo] stopping Triton"; kill $TRITON_PID 2>/dev/null; wait $TRITON_PID 2>/dev/null || true' EXIT
    fi
    printf '[demo] waiting for the model'
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:8000/v2/models/$NAME/ready" >/dev/null 2>&1 && break
        kill -0 $TRITON_PID 2>/dev/null || break
        printf '.'
        sleep 1
    done
    echo
    curl -sf "http://127.0.0.1:8000/v2/models/$NAME/ready" >/dev/null || {
        echo "[demo] Triton did not get the model ready; last log lines:" >&2
        tail -n 40 logs/tritonserver.out >&2 || true
        exit 1
    }
    # The KServe v2 JSON body: the image as base64 text in IMAGE, options as parameters.
    PARAMS=""
    [ $# -eq 0 ] && PARAMS=',"parameters":{"order":"reading"}'
    echo "[demo] curl http://127.0.0.1:8000/v2/models/$NAME/infer (JSON: IMAGE = base64 of $IMAGE$PARAMS)"
    RESPONSE="$(printf '{"inputs":[{"name":"IMAGE","shape":[1,1],"datatype":"BYTES","data":["%s"]}]%s}' \
        "$(base64 -w0 "$IMAGE")" "$PARAMS" | curl -sS --fail-with-body \
        "http://127.0.0.1:8000/v2/models/$NAME/infer" --data-binary @-)" || { echo "$RESPONSE" >&2; exit 1; }
    ANSWER="$(python -c 'import json, sys
print(json.loads(sys.argv[1])["outputs"][0]["data"][0])' "$RESPONSE")"
    if [ $# -eq 0 ]; then
        echo "[demo] the lines it read:"
        print_lines "$ANSWER"
        echo "[demo] the JSON answer (the ANSWER output):"
    fi
    echo "$ANSWER"
    exit 0
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
    print_lines "$ANSWER"
    echo "[demo] the JSON answer:"
else
    echo "[demo] curl http://127.0.0.1:8080/predictions/$NAME -T $IMAGE"
    ANSWER="$(curl -sS --fail-with-body "http://127.0.0.1:8080/predictions/$NAME" -T "$IMAGE")" || { echo "$ANSWER" >&2; exit 1; }
fi
echo "$ANSWER"
