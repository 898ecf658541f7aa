"""A real tritonserver (the nvidia-pytriton wheel's, Python backend) on loopback, spoken to
with Triton's own client libraries (tritonclient.http and tritonclient.grpc) and curl."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from answers import assert_detects, assert_reads, assert_same
from clis import check
from conftest import DET_CHECKPOINT, DET_CONFIG, RECOG_CONFIG
from hostile import hostile_corpus
from images import encode
from mmocr_serve.results import DetectionResult, Recognition
from mmocr_serve_tools.server import metric_sum, read_metrics
from triton_client import error_of, infer


def torchserve_answer(torchserve, model: str, image: bytes, **options) -> dict:
    url = f"{torchserve.inference_url}/predictions/{model}"
    files = {"image": image, **{k: (None, str(v)) for k, v in options.items()}}
    response = requests.post(url, files=files, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def test_detector_equals_model_inference_and_torchserve(triton, torchserve, image_files,
                                                         rendered, det_checkpoint,
                                                         reference_model):
    from mmocr.apis import model_inference

    for name in ("scene.jpg", "scene.png"):
        image = image_files[name].read_bytes()
        served = infer(triton, "dbnet", image)
        expected = DetectionResult.from_mmocr(model_inference(
            reference_model(DET_CONFIG, det_checkpoint), str(image_files[name]))).to_dict()
        assert_detects(rendered[name], expected)
        assert_same(expected, served)
        assert_same(torchserve_answer(torchserve, "dbnet", image), served)


@pytest.mark.parametrize("model", ["crnn", "crnn_onnx"])
def test_recognizer_over_grpc_equals_model_inference_and_torchserve(
        triton, torchserve, image_files, rendered, recog_checkpoint, reference_model, model):
    from mmocr.apis import model_inference

    for name in ("word.png", "word.jpg"):
        image = image_files[name].read_bytes()
        served = infer(triton, model, image, protocol="grpc")
        expected = Recognition.from_mmocr(model_inference(
            reference_model(RECOG_CONFIG, recog_checkpoint), str(image_files[name]))).to_dict()
        assert expected["text"] == rendered[name]
        assert_same(expected, served)
        assert_same(torchserve_answer(torchserve, "crnn", image), served)


def test_end_to_end_with_curl_equals_readtext_and_torchserve(triton, torchserve, image_files,
                                                              rendered, readtext):
    """curl with the KServe v2 JSON body (the image as base64 text), then with options as
    request parameters, which answer as TorchServe's form fields do."""
    from mmocr_serve_tools.triton import answer_of, infer_request

    url = f"{triton.http_url}/v2/models/ocr/infer"
    image = image_files["scene.jpg"].read_bytes()
    for parameters in ({}, {"score_thr": 0.5, "order": "reading"}):
        done = subprocess.run(["curl", "-sS", "--fail-with-body", url, "--data-binary", "@-"],
                              input=infer_request(image, parameters), capture_output=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        served = answer_of(done.stdout)
        assert_reads(rendered["scene.jpg"], served)
        assert_same(torchserve_answer(torchserve, "ocr", image, **parameters), served)
        if not parameters:
            assert_same(readtext(image_files["scene.jpg"]), served)


def test_eight_concurrent_requests_batched_one_bad(triton, image_files, rendered):
    """The dynamic batcher gathers them into fewer executions; the bad one gets its 400 and
    its JSON message, the other seven their answers."""
    def exec_count() -> float:
        return metric_sum(read_metrics(triton.metrics_url, "nv_inference_exec_count"),
                          "nv_inference_exec_count", model="crnn")

    word = image_files["word.png"].read_bytes()
    bodies = [word] * 3 + [b"not an image at all"] + [word] * 4
    before = exec_count()
    with ThreadPoolExecutor(len(bodies)) as pool:
        outcomes = list(pool.map(lambda body: _outcome(triton, body), bodies))
    executions = exec_count() - before
    assert outcomes[3][0] == "400" and outcomes[3][1]["type"] == "InvalidImage", outcomes[3]
    assert "expected image bytes" in outcomes[3][1]["message"]
    good = [answer for i, (status, answer) in enumerate(outcomes) if i != 3]
    assert all(answer["text"] == rendered["word.png"] for answer in good), outcomes
    assert 1 <= executions < len(bodies), executions


def _outcome(triton, body: bytes) -> tuple:
    from tritonclient.utils import InferenceServerException

    try:
        return "200", infer(triton, "crnn", body)
    except InferenceServerException as err:
        return err.status(), json.loads(err.message())


def test_bad_requests_get_their_status_and_json_body(triton, image_files):
    """A 4xx of the README's table is Triton's 400 (INVALID_ARG) over HTTP and
    INVALID_ARGUMENT over gRPC; the body keeps our own code and type."""
    from PIL import Image

    page = image_files["scene.jpg"].read_bytes()
    status, body = error_of(lambda: infer(triton, "dbnet", page, order="sideways"))
    assert (status, body["code"], body["type"]) == ("400", 400, "InvalidOption")
    assert "detector, reading" in body["message"]
    status, body = error_of(lambda: infer(triton, "crnn", page, score_thr=0.5, protocol="grpc"))
    assert (status, body["type"]) == ("StatusCode.INVALID_ARGUMENT", "InvalidOption")
    strip = encode(Image.new("RGB", (1, 10000), (250, 250, 250)), "PNG")
    status, body = error_of(lambda: infer(triton, "dbnet", strip))
    assert (status, body["code"], body["type"]) == ("400", 422, "UnprocessableImage")
    two = requests.post(f"{triton.http_url}/v2/models/crnn/infer", timeout=60, json={
        "inputs": [{"name": "IMAGE", "shape": [2, 1], "datatype": "BYTES", "data": ["a", "b"]}]})
    assert two.status_code == 400 and json.loads(two.json()["error"])["type"] == "BadRequest"
    assert infer(triton, "crnn", image_files["word.png"].read_bytes())["text"]


def test_hostile_inputs_answered_without_a_5xx(triton, image_files):
    """tests/hostile.py's bodies as the IMAGE of a request: each a 200 or a 4xx with our JSON
    body (its own code among those TorchServe may answer), and the server still answers.
    The multipart and request-size cases are TorchServe's HTTP, not a payload."""
    from tritonclient.utils import InferenceServerException

    for name, (kwargs, allowed) in hostile_corpus(request_limit=1).items():
        if "data" not in kwargs or name == "body over the request limit":
            continue
        for model in ("dbnet",):  # as tests/integration/test_reliability.py sends them
            try:
                answer = infer(triton, model, kwargs["data"])
                assert 200 in allowed, (name, model, answer)
            except InferenceServerException as err:
                assert err.status() == "400", (name, model, err.status(), err.message())
                assert json.loads(err.message())["code"] in allowed, (name, err.message())
    assert triton.status("/v2/health/ready") == 200
    assert infer(triton, "crnn", image_files["word.jpg"].read_bytes())["text"]


def test_our_metrics_on_the_metrics_port(triton, image_files, rendered):
    """Known requests, one at a time, move the mmocr_ counters (label model) by exactly
    what they did, in the Prometheus text format."""
    def delta(name, model, **labels):
        return metric_sum(after, name, model=model, **labels) - \
            metric_sum(before, name, model=model, **labels)

    before = triton.settled_metrics()
    word = image_files["word.png"].read_bytes()
    for body in (word, word, word):
        assert infer(triton, "crnn_onnx", body)["text"] == rendered["word.png"]
    assert error_of(lambda: infer(triton, "crnn_onnx", b"not an image"))[0] == "400"
    page = infer(triton, "dbnet", image_files["scene.jpg"].read_bytes())
    assert_detects(rendered["scene.jpg"], page)
    after = triton.settled_metrics()
    assert delta("mmocr_requests_total", "crnn_onnx") == 4
    assert delta("mmocr_errors_total", "crnn_onnx", ErrorType="InvalidImage") == 1
    assert delta("mmocr_results_total", "crnn_onnx") == 3
    assert delta("mmocr_forward_images_total", "crnn_onnx") == 3
    assert delta("mmocr_boxes_total", "dbnet") == len(page["boundary_result"])
    for stage in ("decode", "preprocess", "forward", "postprocess", "handler"):
        assert delta("mmocr_stage_milliseconds_total", "dbnet", Stage=stage) > 0, stage


def test_deployment_check_against_triton(triton, image_files):
    """tools/deployment/test_torchserve.py --server triton: 0 on a match, 2 unreachable."""
    args = [image_files["scene.jpg"], DET_CONFIG, DET_CHECKPOINT,
            "dbnet", "--server", "triton"]
    done = check(*args, "--inference-addr", triton.http_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 of 1 images match" in done.stdout
    done = check(*args, "--inference-addr", "127.0.0.1:9")
    assert done.returncode == 2, done.stdout + done.stderr
