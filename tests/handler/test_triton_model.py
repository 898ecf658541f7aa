"""The Triton front end (``triton_model.py``) in-process, under a stand-in ``pb_utils``
(``tests/fake_pb_utils.py``): one response per request, in order, each with its answer or
its own error; options as request parameters; the counters it reports."""

import json

import pytest

import fake_pb_utils as pb
from answers import assert_detects, assert_same


@pytest.fixture(scope="module")
def front_end():
    return pb.load_front_end()


@pytest.fixture(scope="module")
def crnn(front_end, triton_repo):
    """The recognizer's entry, initialized as Triton does; a parameter of Triton's own
    (``EXECUTION_ENV_PATH``) beside ours is left to Triton."""
    model = front_end.TritonPythonModel()
    model.initialize(pb.args_for(triton_repo / "crnn", {
        "max_batch_size": 8, "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
        "parameters": {"cpu_threads": {"string_value": "1"},
                       "EXECUTION_ENV_PATH": {"string_value": "$$TRITON_MODEL_DIRECTORY/env"}}}))
    yield model
    model.finalize()


def answer(response) -> dict:
    assert not response.has_error(), response.error().message()
    (tensor,) = response.output_tensors()
    assert tensor.name() == "ANSWER" and tensor.as_numpy().shape == (1, 1)
    return json.loads(tensor.as_numpy()[0, 0])


def error(response) -> tuple:
    assert response.has_error()
    return response.error().code(), json.loads(response.error().message())


def test_one_response_per_request_in_order_a_bad_one_failing_alone(crnn, image_files, rendered):
    word, other = image_files["word.png"].read_bytes(), image_files["word.jpg"].read_bytes()
    requests = [pb.image_request(word), pb.image_request(b"not an image"),
                pb.image_request(other), pb.image_request(word, score_thr=0.5),
                pb.image_request(None), pb.InferenceRequest(
                    [pb.Tensor("IMAGE", pb.np.array([[word], [word]], dtype=pb.np.object_))]),
                pb.image_request(word, body="a parameter named body")]
    responses = crnn.execute(requests)
    assert len(responses) == len(requests)
    assert answer(responses[0])["text"] == rendered["word.png"]
    assert answer(responses[2])["text"] == rendered["word.jpg"]
    assert error(responses[1]) == (pb.TritonError.INVALID_ARG, error(responses[1])[1])
    assert error(responses[1])[1]["type"] == "InvalidImage"
    assert error(responses[3])[1]["type"] == "InvalidOption"  # a recognizer takes none
    assert error(responses[4])[1]["type"] == "EmptyPayload"
    assert error(responses[5])[1]["type"] == "BadRequest"  # one image per request
    assert answer(responses[6])["text"] == rendered["word.png"]  # the image stays the image


def test_a_detector_takes_its_options_as_request_parameters(front_end, triton_repo,
                                                            image_files, rendered):
    from mmocr_serve.results import DetectionResult

    model = front_end.TritonPythonModel()
    model.initialize(pb.args_for(triton_repo / "dbnet", {"max_batch_size": 1}))
    page = image_files["scene.jpg"].read_bytes()
    plain, reading, sideways = model.execute([
        pb.image_request(page), pb.image_request(page, order="reading", score_thr=0.5),
        pb.image_request(page, order="sideways")])
    assert_detects(rendered["scene.jpg"], answer(plain))
    selected = DetectionResult.from_mmocr(answer(plain)).select(0.5, "reading").to_dict()
    assert_same(selected, answer(reading))
    assert answer(reading) != answer(plain)  # reading order is not the detector's here
    code, body = error(sideways)
    assert code == pb.TritonError.INVALID_ARG and body["code"] == 400
    assert "detector, reading" in body["message"]


def test_the_counters_it_reports(crnn, image_files):
    word = image_files["word.png"].read_bytes()
    crnn.metrics.flush()
    before = dict(pb.MetricFamily.values)
    crnn.execute([pb.image_request(word), pb.image_request(b"x"), pb.image_request(word)])
    crnn.metrics.flush()

    def delta(name, **labels):
        key = (name, tuple(sorted({"model": "crnn", **labels}.items())))
        return pb.MetricFamily.values.get(key, 0.0) - before.get(key, 0.0)

    assert delta("mmocr_requests_total") == 3
    assert delta("mmocr_results_total") == 2
    assert delta("mmocr_errors_total", ErrorType="InvalidImage") == 1
    assert delta("mmocr_forward_images_total") == 2
    assert delta("mmocr_stage_milliseconds_total", Stage="forward") > 0
