"""Batched inference: images of one preprocessed shape share one forward pass, and each
result equals single-image inference of that image (engine, handler, real TorchServe)."""

from __future__ import annotations

import contextlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from answers import assert_detects, assert_same
from conftest import DET_CONFIG
from fake_context import FakeContext
from images import encode, rendered_page, rendered_word, text_image
from mmocr_serve.engine import ModelRunner, _cheapest
from mmocr_serve.loading import load_engine
from mmocr_serve.results import DetectionResult
from test_handler import load_handler_class

# Two shapes for the demo DBNet (long edge resized to 640, padded to multiples of 32):
# 640x360 -> 640x384 and 640x480.
DET_SIZES = [(640, 360), (640, 360), (640, 480), (640, 360)]
# The demo CRNN reads every crop at 32 x 128: one shape, whatever the crop's size.
RECOG_WORDS = ["one", "shape", "for", "every1"]


def decoded_images(engine, count: int, seed: int) -> list:
    """Rendered pages (detector) or words (recognizer), as the engine decodes them."""
    if engine.detector:
        images = [rendered_page(seed + i, DET_SIZES[i % len(DET_SIZES)]).image
                  for i in range(count)]
    else:
        images = [rendered_word(seed + i, RECOG_WORDS[i % len(RECOG_WORDS)]) for i in range(count)]
    return [engine.decode(encode(image, "PNG")) for image in images]


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


@pytest.mark.parametrize("role,passes", [("detector", [1, 3]), ("recognizer", [4])])
def test_one_pass_per_shape_and_results_equal_single_inference(role, passes, det_engine,
                                                               recog_engine):
    engine = det_engine if role == "detector" else recog_engine
    runner = engine.detector or engine.recognizer
    images = decoded_images(engine, 4, seed=100)
    with forward_passes(runner.model) as seen:
        batched = runner.predict_batch(images)
    assert sorted(seen) == passes
    if role == "recognizer":
        assert [r.text for r in batched] == RECOG_WORDS
    for image, got in zip(images, batched):
        assert_same(runner.predict(image).to_dict(), got.to_dict())


def test_max_batch_splits_a_large_batch(recog_engine):
    runner = ModelRunner(recog_engine.recognizer.model, max_batch=2)
    images = decoded_images(recog_engine, 5, seed=200)
    with forward_passes(runner.model) as seen:
        results = runner.predict_batch(images)
    assert seen == [2, 2, 1]
    assert [r.text for r in results] == (RECOG_WORDS * 2)[:5]
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
    images = decoded_images(engine, 5, seed=300)
    with forward_passes(runner.model) as seen:
        runner.predict_batch(images)
    assert max(seen) == min(chosen, 5) and sum(seen) == 5


def run_in_two_lanes(det_model_dir, count: int, seed: int) -> list:
    """Run ``count`` rendered pages through DBNet with 2 lanes; assert each result equals
    single-image inference. Returns (thread name, torch thread count) as each pass started."""
    import threading

    import torch

    engine = load_engine(det_model_dir, options={"max_forward_batch": 1})  # not calibrated
    runner = engine.detector
    runner.lanes = 2
    seen = []
    handle = runner.model.backbone.register_forward_pre_hook(
        lambda _m, _a: seen.append((threading.current_thread().name, torch.get_num_threads())))
    images = decoded_images(engine, count, seed)
    try:
        batched = runner.predict_batch(images)
    finally:
        handle.remove()
    runner.lanes = 1
    for image, got in zip(images, batched):
        assert_same(runner.predict(image).to_dict(), got.to_dict())
    return seen


def test_passes_side_by_side_run_in_lanes_and_equal_single_inference(det_model_dir):
    import torch

    threads = torch.get_num_threads()
    seen = run_in_two_lanes(det_model_dir, 4, seed=400)
    assert len(seen) == 4 and len({name for name, _ in seen}) == 2
    assert all(name.startswith("mmocr-serve-lane") and count == max(1, threads // 2)
               for name, count in seen)
    assert torch.get_num_threads() == threads  # this thread's own count is left alone


def test_a_pass_left_over_from_the_lanes_runs_on_all_threads(det_model_dir):
    import threading

    import torch

    threads = torch.get_num_threads()
    seen = run_in_two_lanes(det_model_dir, 3, seed=500)
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
    page = rendered_page(600, (640, 360))
    good = encode(page.image, "PNG")
    strip = encode(text_image("x", (1, 10000)), "PNG")  # DBNet's resize cannot take it
    ctx = FakeContext(det_model_dir)
    out = handler.handle([{"body": good}, {"body": strip}, {"body": b"junk"}, {"body": good}], ctx)
    assert [ctx.statuses.get(i, (200,))[0] for i in range(4)] == [200, 422, 400, 200]
    assert_detects(page, out[0])
    assert out[0] == out[3]
    assert "1x10000" in out[1]["message"]


def test_handler_batch_equals_one_request_at_a_time(det_model_dir):
    handler = load_handler_class(det_model_dir)()
    handler.initialize(FakeContext(det_model_dir))
    pages = [rendered_page(700 + i, size) for i, size in enumerate(DET_SIZES)]
    bodies = [encode(page.image, "PNG") for page in pages]
    batched = handler.handle([{"body": b} for b in bodies], FakeContext(det_model_dir))
    for page, body, got in zip(pages, bodies, batched):
        single = handler.handle([{"body": body}], FakeContext(det_model_dir))[0]
        assert_detects(page, single)
        assert_same(single, got)


@pytest.mark.integration
def test_concurrent_mixed_size_requests_are_batched_by_torchserve(torchserve, det_checkpoint,
                                                                  reference_model, tmp_path):
    """dbnet.mar is built with batch size 4 and a 100 ms delay: 8 concurrent requests of
    two sizes reach the handler in batches; each answer equals in-process inference."""
    from mmocr.apis import model_inference

    pages = [rendered_page(800 + i, size) for i, size in enumerate(DET_SIZES * 2)]
    files = []
    for i, page in enumerate(pages):
        path = tmp_path / f"scene{i}.png"
        path.write_bytes(encode(page.image, "PNG"))
        files.append(path)
    url = f"{torchserve.inference_url}/predictions/dbnet"

    def send(path):
        return requests.post(url, data=path.read_bytes(), timeout=120)

    with ThreadPoolExecutor(len(files)) as pool:
        answers = list(pool.map(send, files))
    model = reference_model(DET_CONFIG, det_checkpoint)
    for page, path, answer in zip(pages, files, answers):
        assert answer.status_code == 200, answer.text
        expected = DetectionResult.from_mmocr(model_inference(model, str(path))).to_dict()
        assert_detects(page, expected)
        assert_same(expected, answer.json())


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
