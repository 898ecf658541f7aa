"""Batched inference: images of one preprocessed shape share one forward pass, and each
result equals single-image inference of that image (engine and handler)."""

from __future__ import annotations

import dataclasses

import pytest

from answers import assert_detects, assert_same
from fake_context import FakeContext, load_handler_class
from probes import forward_passes
from images import encode, rendered_page, rendered_word, text_image
from mmocr_serve.adapter import ModelAdapter
from mmocr_serve.engine import OCREngine, load_engine
from mmocr_serve.errors import ModelLoadError, ServeError
from mmocr_serve.runtime import RuntimeOptions

# Two shapes for the demo DBNet (long edge resized to 1024, padded to multiples of 32):
# 640x360 -> 1024x576 and 640x480 -> 1024x768.
DET_SIZES = [(640, 360), (640, 360), (640, 480), (640, 360)]
# The demo CRNN reads every crop at 32 x 160: one shape, whatever the crop's size.
RECOG_WORDS = ["one", "shape", "for", "every1"]


def decoded_images(engine, count: int, seed: int) -> list:
    """Rendered pages (detector) or words (recognizer), as the engine decodes them."""
    if engine.detector:
        images = [rendered_page(seed + i, DET_SIZES[i % len(DET_SIZES)]).image
                  for i in range(count)]
    else:
        images = [rendered_word(seed + i, RECOG_WORDS[i % len(RECOG_WORDS)]) for i in range(count)]
    return [engine.decode(encode(image, "PNG")) for image in images]


def results(engine, images: list) -> list:
    """The engine's results for decoded images; an error fails the test."""
    outcomes = engine.predict_many(images)
    assert not [out for out in outcomes if isinstance(out, ServeError)], outcomes
    return outcomes


BATCHED = RuntimeOptions(max_forward_batch=32)


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
    adapter = engine.detector or engine.recognizer
    images = decoded_images(engine, 4, seed=100)
    with forward_passes(adapter.model) as seen:
        batched = results(engine, images)
    assert sorted(seen) == passes
    if role == "recognizer":
        assert [r.text for r in batched] == RECOG_WORDS
    for image, got in zip(images, batched):
        assert_same(results(engine, [image])[0].to_dict(), got.to_dict())


def test_max_batch_splits_a_large_batch(recog_engine):
    engine = OCREngine(recognizer=ModelAdapter(recog_engine.recognizer.model, max_batch=2))
    images = decoded_images(recog_engine, 5, seed=200)
    with forward_passes(engine.recognizer.model) as seen:
        texts = [r.text for r in results(engine, images)]
    assert seen == [2, 2, 1]
    assert texts == (RECOG_WORDS * 2)[:5]
    assert texts == [results(engine, [i])[0].text for i in images]


@pytest.mark.parametrize("options,device,crops,expected", [
    (RuntimeOptions(batch_size=4), "cpu", False, 4),  # a batch runs as one pass
    (RuntimeOptions(batch_size=4), "cuda:0", False, 32),
    (RuntimeOptions(batch_size=1), "cpu", True, 32),  # an end-to-end page's crops
    (RuntimeOptions(batch_size=4, max_forward_batch=2), "cpu", False, 2),
    (RuntimeOptions(batch_size=4, max_forward_batch=2), "cpu", True, 2),
])
def test_forward_batch_defaults(options, device, crops, expected):
    assert options.forward_batch(device, crops) == expected


def test_a_workers_batch_runs_in_one_pass_with_the_same_answers_every_time(det_model_dir):
    engine = load_engine(det_model_dir, options=RuntimeOptions(batch_size=3))
    assert engine.detector.max_batch == 3
    images = decoded_images(engine, 4, seed=300)  # three 640x360 pages, one 640x480
    with forward_passes(engine.detector.model) as seen:
        first = results(engine, images)
        again = results(engine, images)
    assert seen == [3, 1, 3, 1]
    assert all(r.instances for r in first)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in again]  # exactly


def test_runtime_options_name_a_bad_value():
    options = RuntimeOptions.from_mapping({"task": "det", "batch_size": "4", "cpu_threads": "auto",
                                           "max_forward_batch": 8, "cpu_memory": "release"},
                                          other_keys=("task",))
    assert options == RuntimeOptions(batch_size=4, max_forward_batch=8, cpu_memory="release")
    with pytest.raises(ModelLoadError, match="max_forward_batch must be a positive integer"):
        RuntimeOptions.from_mapping({"max_forward_batch": "lots"})
    with pytest.raises(ModelLoadError, match="cpu_layout must be one of"):
        RuntimeOptions.from_mapping({"cpu_layout": "nhwc"})
    with pytest.raises(ModelLoadError, match="unknown runtime option.s. max_forward_bach"):
        RuntimeOptions.from_mapping({"max_forward_bach": 8})
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 2


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


