"""The handler driven with a fake TorchServe context: batch contract, errors, equality."""

import base64
import json
from pathlib import Path

import pytest

from answers import assert_detects, assert_same
from clis import ROOT
from conftest import DET_CONFIG, RECOG_CONFIG
from fake_context import FakeContext, load_handler_class
from mmocr_serve.metrics import torchserve_sink
from mmocr_serve.results import DetectionResult, Recognition


@pytest.fixture(scope="module")
def det_handler(det_model_dir):
    handler = load_handler_class(det_model_dir)()
    handler.initialize(FakeContext(det_model_dir))
    return handler


@pytest.fixture(scope="module")
def recog_handler(recog_model_dir):
    handler = load_handler_class(recog_model_dir)()
    handler.initialize(FakeContext(recog_model_dir))
    return handler


def test_cpu_worker_gets_cpu_device(det_handler):
    assert det_handler.device == "cpu"
    assert str(det_handler.engine.detector.device) == "cpu"


def test_detection_batch_with_a_corrupt_image(det_handler, image_files, rendered, det_checkpoint,
                                              reference_model):
    from mmocr.apis import model_inference

    good = image_files["scene.jpg"].read_bytes()
    batch = [{"body": bytearray(good)}, {"body": bytearray(b"not an image at all")},
             {"data": base64.b64encode(good).decode()}]
    ctx = FakeContext(det_handler.context.system_properties["model_dir"])
    out = det_handler.handle(batch, ctx)

    assert len(out) == 3
    json.dumps(out)  # plain JSON types only
    assert ctx.statuses == {1: (400, "InvalidImage")}
    assert out[1]["code"] == 400 and out[1]["type"] == "InvalidImage"
    assert "JPEG" in out[1]["message"]
    assert "filename" not in out[0]
    expected = DetectionResult.from_mmocr(
        model_inference(reference_model(DET_CONFIG, det_checkpoint),
                        str(image_files["scene.jpg"]))).to_dict()
    assert_detects(rendered["scene.jpg"], expected)
    for served in (out[0], out[2]):
        assert_same(expected, served)


def test_recognition_batch_matches_model_inference(recog_handler, image_files, rendered,
                                                   recog_checkpoint, reference_model):
    from mmocr.apis import model_inference

    names = ["word.png", "word.jpg"]
    ctx = FakeContext(recog_handler.context.system_properties["model_dir"])
    out = recog_handler.handle([{"body": image_files[n].read_bytes()} for n in names], ctx)
    assert ctx.statuses == {}
    for name, served in zip(names, out):
        assert {"text", "score"} <= set(served) <= {"text", "score", "char_scores"}
        assert isinstance(served["score"], float)
        expected = Recognition.from_mmocr(model_inference(
            reference_model(RECOG_CONFIG, recog_checkpoint), str(image_files[name]))).to_dict()
        assert expected["text"] == rendered[name]
        assert_same(expected, served)


def test_every_slot_can_fail_on_its_own(recog_handler):
    batch = [{"body": b""}, {"body": {"data": "%%%"}}, {"body": {"data": 3}}, {}]
    ctx = FakeContext(recog_handler.context.system_properties["model_dir"])
    out = recog_handler.handle(batch, ctx)
    assert [o["type"] for o in out] == ["EmptyPayload", "InvalidBase64", "BadRequest",
                                        "EmptyPayload"]
    assert all(ctx.statuses[i][0] == 400 for i in range(4))


def test_pixel_limit_from_model_config(recog_model_dir, image_files):
    handler = load_handler_class(recog_model_dir)()
    handler.initialize(FakeContext(recog_model_dir,
                                   model_yaml_config={"handler": {"max_image_pixels": 100}}))
    ctx = FakeContext(recog_model_dir)
    out = handler.handle([{"body": image_files["word.png"].read_bytes()}], ctx)
    assert out[0]["type"] == "ImageTooLarge" and ctx.statuses[0][0] == 413


@pytest.mark.parametrize("task", ["det", "recog"])
def test_exif_orientation_as_in_process(task, det_handler, recog_handler, det_checkpoint,
                                        recog_checkpoint, reference_model, rendered, image_files,
                                        tmp_path):
    """DBNet's config ignores EXIF orientation, CRNN's applies it; served follows each. The
    page is stored upright and the word turned a quarter left, both tagged "turn right"
    (orientation 6): each model reads its text only if it treats the tag as MMOCR does."""
    import numpy as np
    from mmocr.apis import model_inference
    from PIL import Image

    from images import jpeg_with_orientation

    if task == "det":
        handler, config, ckpt = det_handler, DET_CONFIG, det_checkpoint
        stored = Image.fromarray(rendered["scene.jpg"].image)
    else:
        handler, config, ckpt = recog_handler, RECOG_CONFIG, recog_checkpoint
        stored = Image.fromarray(np.rot90(np.asarray(Image.open(image_files["word.png"]))))
    path = tmp_path / "oriented.jpg"
    path.write_bytes(jpeg_with_orientation(stored, orientation=6))
    out = handler.handle([{"body": path.read_bytes()}],
                         FakeContext(handler.context.system_properties["model_dir"]))
    raw = model_inference(reference_model(config, ckpt), str(path))
    expected = (DetectionResult if task == "det" else Recognition).from_mmocr(raw).to_dict()
    if task == "det":
        assert_detects(rendered["scene.jpg"], expected)
    else:
        assert expected["text"] == rendered["word.png"]
    assert_same(expected, out[0])


def test_extreme_aspect_ratio_is_a_422_for_its_slot(det_handler, image_files):
    from PIL import Image

    from images import encode

    strip = encode(Image.new("RGB", (1, 10000), (255, 255, 255)), "PNG")
    ctx = FakeContext(det_handler.context.system_properties["model_dir"])
    out = det_handler.handle([{"body": strip}, {"body": image_files["scene.jpg"].read_bytes()}],
                             ctx)
    assert out[0]["type"] == "UnprocessableImage" and ctx.statuses[0][0] == 422
    assert "1x10000" in out[0]["message"]
    assert "boundary_result" in out[1] and 1 not in ctx.statuses


def test_a_batch_reports_its_metrics_through_torchserves_cache(recog_model_dir, image_files,
                                                               caplog):
    """The lines TorchServe's metrics cache logs for the frontend, for one batch of four."""
    import logging
    import re
    import threading

    word = image_files["word.png"].read_bytes()
    ctx = FakeContext(recog_model_dir)
    handler = load_handler_class(Path(ctx.system_properties["model_dir"]))()
    handler.initialize(ctx)
    # a reporter whose thread waits an hour: this test flushes, not the thread
    handler.metrics = type(handler.metrics)(torchserve_sink(ctx.metrics), interval_s=3600)
    # handle() and flush() run on this thread; other handlers of this process report from
    # their own reporter threads to the same logger
    def lines():
        return [r.getMessage() for r in caplog.records if r.thread == threading.get_ident()
                and r.getMessage().startswith("[METRICS]mmocr_")]

    with caplog.at_level(logging.INFO, logger="ts.metrics.caching_metric"):
        handler.handle([{"body": word}, {"body": b"junk"}, {"body": word}, {"data": ""}], ctx)
        assert not lines()  # not per batch
        handler.metrics.flush()
    found = {}
    for line in lines():
        name, value, dims = re.match(r"\[METRICS\](\w+)\.\w+:([\d.e-]+)\|#([^|]*)\|", line).groups()
        found[(name, dims.split(",")[0] if name in ("mmocr_errors_total",
                                                       "mmocr_stage_milliseconds_total") else "")] = float(value)
    assert found[("mmocr_requests_total", "")] == 4
    assert found[("mmocr_errors_total", "ErrorType:InvalidImage")] == 1
    assert found[("mmocr_errors_total", "ErrorType:EmptyPayload")] == 1
    assert found[("mmocr_results_total", "")] == 2
    assert found[("mmocr_forward_passes_total", "")] == 1  # two words of one shape
    assert found[("mmocr_forward_images_total", "")] == 2
    assert found[("mmocr_stage_milliseconds_total", "Stage:forward")] > 0
    assert {key[1] for key in found if key[0] == "mmocr_stage_milliseconds_total"} == {
        f"Stage:{s}" for s in ("decode", "preprocess", "forward", "postprocess", "handler")}


def test_the_handler_module_defines_one_class():
    """TorchServe refuses a handler module with more than one class in it."""
    import ast

    tree = ast.parse((ROOT / "mmocr_handler.py").read_text())
    assert [n.name for n in tree.body if isinstance(n, ast.ClassDef)] == ["MMOCRHandler"]
