"""Batched inference: images of one preprocessed shape share one forward pass, and each
result equals single-image inference of that image (engine, handler, real TorchServe)."""

from __future__ import annotations

import contextlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import DET_CONFIG
from fake_context import FakeContext
from images import encode, text_image
from mmocr_serve.compare import compare
from mmocr_serve.engine import ModelRunner, _cheapest
from mmocr_serve.loading import load_engine
from mmocr_serve.results import DetectionResult
from test_handler import load_handler_class

# Three shapes for DBNet after its resize: 640x360 -> 1312x736, 500x300 -> 1248x736.
DET_SIZES = [(640, 360), (640, 360), (500, 300), (640, 360)]
# CRNN keeps the aspect ratio at height 32: 128 and 100 pixels wide are two shapes.
RECOG_SIZES = [(128, 32), (100, 32), (128, 32), (128, 32)]


def decoded_images(engine, sizes, prefix: str) -> list:
    """Test images as the engine decodes them for its model (CRNN reads grayscale)."""
    return [engine.decode(encode(text_image(f"{prefix} {i}", size), "PNG"))
            for i, size in enumerate(sizes)]


@contextlib.contextmanager
def forward_passes(model):
    """Records the batch size of every forward pass of ``model``'s backbone."""
    sizes = []

    def hook(_module, args):
        sizes.append(int(args[0].shape[0]))

    handle = model.backbone.register_forward_pre_hook(hook)
    try:
        yield sizes
    finally:
        handle.remove()


BATCHED = {"max_forward_batch": 32}  # not "auto": a CPU may measure batching as slower


@pytest.fixture(scope="module")
def det_engine(det_model_dir):
    return load_engine(det_model_dir, options=BATCHED)


@pytest.fixture(scope="module")
def recog_engine(recog_model_dir):
    return load_engine(recog_model_dir, options=BATCHED)


@pytest.mark.parametrize("role,sizes,passes", [("detector", DET_SIZES, [1, 3]),
                                               ("recognizer", RECOG_SIZES, [1, 3])])
def test_one_pass_per_shape_and_results_equal_single_inference(role, sizes, passes, det_engine,
                                                               recog_engine):
    engine = det_engine if role == "detector" else recog_engine
    runner = engine.detector or engine.recognizer
    images = decoded_images(engine, sizes, "Batch")
    with forward_passes(runner.model) as seen:
        batched = runner.predict_batch(images)
    assert sorted(seen) == passes
    for image, got in zip(images, batched):
        single = runner.predict(image)
        diff = compare(single.to_dict(), got.to_dict())
        assert diff.ok, diff.problems


def test_max_batch_splits_a_large_batch(recog_engine):
    runner = ModelRunner(recog_engine.recognizer.model, max_batch=2)
    images = decoded_images(recog_engine, [(128, 32)] * 5, "Split")
    with forward_passes(runner.model) as seen:
        results = runner.predict_batch(images)
    assert seen == [2, 2, 1]
    assert [r.text for r in results] == [runner.predict(i).text for i in images]


def test_calibration_keeps_the_pass_size_it_measured_cheapest(recog_model_dir, caplog):
    engine = load_engine(recog_model_dir, options=BATCHED)
    runner = engine.recognizer
    with caplog.at_level(logging.WARNING, logger="mmocr_serve.engine"):
        chosen = runner.calibrate(largest=6)
    assert runner.max_batch == chosen and chosen in (1, 2, 4, 6)
    measured = re.search(r"ms per image by images per pass: ([\d:, ]+)[:;]", caplog.text).group(1)
    sizes = [int(pair.split(":")[0]) for pair in measured.split(", ")]
    assert sizes[:2] == [1, 2] and chosen in sizes and set(sizes) <= {1, 2, 4, 6}
    images = decoded_images(engine, [(128, 32)] * 5, "Calibrated")
    with forward_passes(runner.model) as seen:
        runner.predict_batch(images)
    assert max(seen) == min(chosen, 5) and sum(seen) == 5


def run_in_two_lanes(det_model_dir, sizes, tag: str) -> list:
    """Run DBNet images of ``sizes`` with 2 lanes; assert each result equals single-image
    inference. Returns (thread name, torch thread count) as each pass started."""
    import threading

    import torch

    engine = load_engine(det_model_dir, options={"max_forward_batch": 1})  # not calibrated
    runner = engine.detector
    runner.lanes = 2
    seen = []
    handle = runner.model.backbone.register_forward_pre_hook(
        lambda _m, _a: seen.append((threading.current_thread().name, torch.get_num_threads())))
    images = decoded_images(engine, sizes, tag)
    try:
        batched = runner.predict_batch(images)
    finally:
        handle.remove()
    runner.lanes = 1
    for image, got in zip(images, batched):
        diff = compare(runner.predict(image).to_dict(), got.to_dict())
        assert diff.ok, diff.problems
    return seen


def test_passes_side_by_side_run_in_lanes_and_equal_single_inference(det_model_dir):
    import torch

    threads = torch.get_num_threads()
    seen = run_in_two_lanes(det_model_dir, DET_SIZES, "Lanes")
    assert len(seen) == 4 and len({name for name, _ in seen}) == 2
    assert all(name.startswith("mmocr-serve-lane") and count == max(1, threads // 2)
               for name, count in seen)
    assert torch.get_num_threads() == threads  # this thread's own count is left alone


def test_a_pass_left_over_from_the_lanes_runs_on_all_threads(det_model_dir):
    import threading

    import torch

    threads = torch.get_num_threads()
    seen = run_in_two_lanes(det_model_dir, DET_SIZES[:3], "Odd")
    lanes = [count for name, count in seen if name.startswith("mmocr-serve-lane")]
    assert lanes == [max(1, threads // 2)] * 2
    assert seen[-1] == (threading.current_thread().name, threads)  # the third, on every thread


def test_a_detector_calibration_measures_passes_side_by_side(det_model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="mmocr_serve.engine"):
        engine = load_engine(det_model_dir, options={"batch_size": 2})
    runner = engine.detector
    line = next(r.getMessage() for r in caplog.records if "images per pass" in r.getMessage())
    assert re.search(r"images per pass: 1: \d+, 2: \d+[;:]", line)
    if runner.max_batch == 1:  # a batched pass was no cheaper: lanes were measured
        assert re.search(r"by passes side by side: 1: \d+, 2: \d+: ", line)
        assert runner.lanes in (1, 2) and (runner.lanes == 2) == ("side by side, " in line)
    assert runner.channels_last


def test_calibration_is_skipped_where_no_pass_gets_two_images(det_model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="mmocr_serve.engine"):
        engine = load_engine(det_model_dir, options={"batch_size": 1})
    assert "images per pass" not in caplog.text
    assert engine.detector.max_batch == 32


def test_a_bad_image_in_a_batch_fails_alone(det_model_dir):
    handler = load_handler_class(det_model_dir)()
    handler.initialize(FakeContext(det_model_dir))
    good = encode(text_image("fine", (320, 96)), "PNG")
    strip = encode(text_image("x", (1, 10000)), "PNG")  # DBNet's resize cannot take it
    ctx = FakeContext(det_model_dir)
    out = handler.handle([{"body": good}, {"body": strip}, {"body": b"junk"}, {"body": good}], ctx)
    assert [ctx.statuses.get(i, (200,))[0] for i in range(4)] == [200, 422, 400, 200]
    assert out[0] == out[3] and "boundary_result" in out[0]
    assert "1x10000" in out[1]["message"]


def test_handler_batch_equals_one_request_at_a_time(det_model_dir):
    handler = load_handler_class(det_model_dir)()
    handler.initialize(FakeContext(det_model_dir))
    bodies = [encode(text_image(f"Handler {i}", size), "PNG") for i, size in enumerate(DET_SIZES)]
    batched = handler.handle([{"body": b} for b in bodies], FakeContext(det_model_dir))
    for body, got in zip(bodies, batched):
        single = handler.handle([{"body": body}], FakeContext(det_model_dir))[0]
        diff = compare(single, got)
        assert diff.ok, diff.problems


@pytest.mark.integration
def test_concurrent_mixed_size_requests_are_batched_by_torchserve(torchserve, det_checkpoint,
                                                                  reference_model, tmp_path):
    """dbnet.mar is built with batch size 4 and a 100 ms delay: 8 concurrent requests of
    two sizes reach the handler in batches; each answer equals in-process inference."""
    from mmocr.apis import model_inference

    sizes = DET_SIZES * 2
    files = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"scene{i}.png"
        path.write_bytes(encode(text_image(f"Served {i}", size), "PNG"))
        files.append(path)
    url = f"{torchserve.inference_url}/predictions/dbnet"

    def send(path):
        return requests.post(url, data=path.read_bytes(), timeout=120)

    with ThreadPoolExecutor(len(files)) as pool:
        answers = list(pool.map(send, files))
    model = reference_model(DET_CONFIG, det_checkpoint)
    for path, answer in zip(files, answers):
        assert answer.status_code == 200, answer.text
        expected = DetectionResult.from_mmocr(model_inference(model, str(path))).to_dict()
        diff = compare(expected, answer.json())
        assert diff.ok, diff.problems


def _search(table: dict, largest: int, margin: float, warm: bool = False):
    """``_cheapest`` over fixed per-setting costs, recording every call it makes."""
    calls = []

    def cost(setting: int) -> float:
        calls.append(setting)
        return table[setting]

    best, costs = _cheapest(cost, largest, repeats=2, margin=margin, warm=warm)
    return best, costs, calls


def test_a_negative_margin_keeps_a_setting_unless_clearly_dearer():
    assert _search({1: 1.00, 2: 1.04}, 2, margin=-0.05)[0] == 2  # 4% dearer: kept
    assert _search({1: 1.00, 2: 1.06}, 2, margin=-0.05)[0] == 1  # 6% dearer: refused
    assert _search({1: 1.00, 2: 0.96}, 2, margin=0.05)[0] == 1  # 4% cheaper: not enough
    assert _search({1: 1.00, 2: 0.94}, 2, margin=0.05)[0] == 2


def test_a_negative_margin_does_not_compound_as_the_setting_doubles():
    # each step 4% dearer than the last: 4 is 8% dearer than 1, the cheapest timed
    best, costs, _ = _search({1: 1.00, 2: 1.04, 4: 1.0816}, 4, margin=-0.05)
    assert best == 2 and set(costs) == {1, 2, 4}


def test_a_warm_search_skips_the_untimed_run_of_setting_one():
    _, _, cold = _search({1: 1.0, 2: 0.9}, 2, margin=0.0)
    _, _, warm = _search({1: 1.0, 2: 0.9}, 2, margin=0.0, warm=True)
    assert cold.count(1) == 3 and warm.count(1) == 2 and cold.count(2) == warm.count(2) == 3
