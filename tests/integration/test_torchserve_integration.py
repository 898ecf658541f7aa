"""A real TorchServe (Java frontend, Python workers) on loopback, spoken to with curl and requests."""

import base64
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from answers import assert_detects, assert_same
from conftest import DET_CONFIG, RECOG_CONFIG
from mmocr_serve.results import DetectionResult, Recognition



def curl(*args) -> tuple:
    """Run curl; returns (HTTP status, parsed JSON body)."""
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_detection_with_curl_T_equals_model_inference(torchserve, image_files, rendered,
                                                     det_checkpoint, reference_model):
    from mmocr.apis import model_inference

    for name in ("scene.jpg", "scene.png"):
        status, served = curl(f"{torchserve.inference_url}/predictions/dbnet",
                              "-T", str(image_files[name]))
        assert status == 200, served
        assert set(served) == {"boundary_result"}
        expected = DetectionResult.from_mmocr(model_inference(
            reference_model(DET_CONFIG, det_checkpoint), str(image_files[name]))).to_dict()
        assert_detects(rendered[name], expected)
        assert_same(expected, served)


def test_recognition_with_curl_equals_model_inference(torchserve, image_files, rendered,
                                                      recog_checkpoint, reference_model):
    from mmocr.apis import model_inference

    status, served = curl(f"{torchserve.inference_url}/predictions/crnn", "-T",
                          str(image_files["word.png"]))
    assert status == 200, served
    assert isinstance(served["text"], str) and isinstance(served["score"], float)
    expected = Recognition.from_mmocr(model_inference(
        reference_model(RECOG_CONFIG, recog_checkpoint), str(image_files["word.png"]))).to_dict()
    assert expected["text"] == rendered["word.png"]
    assert_same(expected, served)


def test_every_input_form_gives_the_same_answer(torchserve, image_files, rendered):
    url = f"{torchserve.inference_url}/predictions/crnn"
    path = image_files["word.jpg"]
    data = path.read_bytes()
    answers = [
        curl(url, "-T", str(path)),
        curl(url, "--data-binary", f"@{path}", "-H", "Content-Type: application/octet-stream"),
        curl(url, "-F", f"image=@{path}"),
        curl(url, "-F", f"anything=@{path}"),
        curl(url, "-H", "Content-Type: application/json",
             "-d", json.dumps({"data": base64.b64encode(data).decode()})),
    ]
    assert all(status == 200 for status, _ in answers), answers
    assert answers[0][1]["text"] == rendered["word.jpg"]
    assert all(body == answers[0][1] for _, body in answers), answers


@pytest.mark.parametrize("args,status,kind", [
    (["-T", "{text}"], 400, "InvalidImage"),
    (["--data-binary", "", "-H", "Content-Type: application/octet-stream"], 400, "EmptyPayload"),
    (["-H", "Content-Type: application/json", "-d", '{"data": "!!not base64!!"}'], 400,
     "InvalidBase64"),
    (["-H", "Content-Type: application/json", "-d", '{"nothing": 1}'], 400, "BadRequest"),
])
def test_bad_requests_get_a_json_4xx(torchserve, workdir, args, status, kind):
    text = workdir / "notes.txt"
    text.write_text("this is a text file, not an image\n")
    args = [a.replace("{text}", str(text)) for a in args]
    got, body = curl(f"{torchserve.inference_url}/predictions/dbnet", *args)
    assert (got, body["code"], body["type"]) == (status, status, kind)
    assert body["message"]


def test_bad_request_beside_concurrent_good_ones(torchserve, image_files, rendered):
    """A text file in the same batch window fails alone; the worker keeps its PID.

    The three good answers agree within ``compare``'s tolerances: TorchServe may gather
    them into passes of different sizes, and oneDNN may sum a larger batch in another order."""
    url = f"{torchserve.inference_url}/predictions/dbnet"
    pids = torchserve.worker_pids("dbnet")
    good = image_files["scene.jpg"].read_bytes()
    bodies = [good, b"plain text, not an image", good, good]
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: requests.post(url, data=b, timeout=120), bodies))
    assert [r.status_code for r in responses] == [200, 400, 200, 200]
    assert responses[1].json()["type"] == "InvalidImage"
    first = responses[0].json()
    assert_detects(rendered["scene.jpg"], first)
    for other in (responses[2].json(), responses[3].json()):
        assert_same(first, other)
    assert torchserve.worker_pids("dbnet") == pids


def test_large_image_is_accepted_above_the_default_request_limit(torchserve):
    """TorchServe's default limit is 6.5 MB; config.properties raises it."""
    import numpy as np
    from PIL import Image

    from images import encode

    noise = np.random.default_rng(1).integers(0, 255, (1800, 1800, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    assert len(data) > 7_000_000
    response = requests.post(f"{torchserve.inference_url}/predictions/crnn", data=data, timeout=300)
    assert response.status_code == 200, response.text


def test_server_settings_from_config_properties(torchserve):
    """Model registration through the API is off; the management API lists both models."""
    models = requests.get(f"{torchserve.management_url}/models", timeout=10).json()["models"]
    assert sorted(m["modelName"] for m in models) == ["crnn", "dbnet", "ocr"]
    register = requests.post(f"{torchserve.management_url}/models?url=dbnet.mar", timeout=10)
    assert register.status_code == 405


def test_the_worker_log_says_each_model_is_ready(torchserve):
    """The handler's own lines reach the model log (mmcv mutes the root logger's handler
    when it is imported; loading puts its level back)."""
    log = (torchserve.workdir / "logs" / "model_log.log").read_text(errors="replace")
    for model in ("dbnet", "crnn", "ocr"):
        assert any(f"-{model}_" in line and "model ready on cpu" in line
                   for line in log.splitlines()), f"no 'model ready' line for {model}"


def test_handler_metrics_on_the_metrics_port(torchserve, image_files, rendered):
    """Known requests, one at a time, move the mmocr_ counters by exactly what they did."""
    from mmocr_serve_tools.server import metric_sum

    def delta(name, model, **labels):
        return metric_sum(after, name, ModelName=model, **labels) - \
            metric_sum(before, name, ModelName=model, **labels)

    before = torchserve.settled_metrics()  # earlier tests' requests all counted
    word = image_files["word.png"].read_bytes()
    crnn = f"{torchserve.inference_url}/predictions/crnn"
    statuses = [requests.post(crnn, data=body, timeout=120).status_code
                for body in (word, word, b"not an image", word)]
    assert statuses == [200, 200, 400, 200]
    page = requests.post(f"{torchserve.inference_url}/predictions/dbnet",
                         data=image_files["scene.jpg"].read_bytes(), timeout=120)
    boxes = len(page.json()["boundary_result"])
    assert_detects(rendered["scene.jpg"], page.json())
    after = torchserve.settled_metrics()
    assert delta("mmocr_requests_total", "crnn") == 4
    assert delta("mmocr_errors_total", "crnn", ErrorType="InvalidImage") == 1
    assert delta("mmocr_results_total", "crnn") == 3
    assert delta("mmocr_forward_images_total", "crnn") == 3  # one request per batch here
    assert delta("mmocr_forward_passes_total", "crnn") == 3
    assert delta("mmocr_boxes_total", "crnn") == 0
    assert delta("mmocr_requests_total", "dbnet") == 1 and boxes > 0
    assert delta("mmocr_boxes_total", "dbnet") == boxes
    for stage in ("decode", "preprocess", "forward", "postprocess", "handler"):
        assert delta("mmocr_stage_milliseconds_total", "dbnet", Stage=stage) > 0, stage
    assert delta("mmocr_stage_milliseconds_total", "dbnet", Stage="forward") > \
        delta("mmocr_stage_milliseconds_total", "dbnet", Stage="handler")
