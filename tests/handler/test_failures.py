"""A forward pass that fails on one image: a fault injected into the trained recognizer's
own forward, which raises when its batch holds a blank (constant) image. The engine must
give that image alone an ``InferenceError`` and every other image its normal answer."""

from __future__ import annotations

import numpy as np
import pytest

from images import encode

from mmocr_serve.engine import Stats, load_engine
from mmocr_serve.errors import InferenceError
from mmocr_serve.runtime import RuntimeOptions

BATCH = 8
MARKED = 5  # the slot of the blank image


@pytest.fixture(scope="module")
def faulty_engine(recog_model_dir):
    """The recognizer, batching up to 8 images a pass, its forward failing on a blank."""
    engine = load_engine(recog_model_dir, options=RuntimeOptions(max_forward_batch=BATCH))
    model = engine.recognizer.model
    forward = model.forward

    def failing_forward(*args, img=None, **kwargs):
        flat = img.flatten(1)
        if bool((flat.max(dim=1).values == flat.min(dim=1).values).any()):
            raise RuntimeError("injected fault: a blank image in this pass")
        return forward(*args, img=img, **kwargs)

    model.forward = failing_forward
    return engine


def test_the_failing_image_alone_gets_an_inference_error(faulty_engine, image_files, rendered):
    word = image_files["word.png"].read_bytes()
    shape = faulty_engine.decode(word).shape
    blank = encode(np.full(shape, 255, np.uint8), "PNG")
    payloads = [blank if slot == MARKED else word for slot in range(BATCH)]
    stats = Stats()
    out = faulty_engine.predict_payloads(payloads, stats)

    assert len(out) == BATCH
    error = out[MARKED]
    assert isinstance(error, InferenceError), error
    body = error.to_dict()
    assert (body["code"], body["type"]) == (500, "InferenceError")
    assert "injected fault" in body["message"]
    for slot, answer in enumerate(out):
        if slot != MARKED:
            assert answer.to_dict()["text"] == rendered["word.png"], (slot, answer)
    # one pass of all 8 failed, then each image ran alone: 1 + 8 passes
    assert stats.passes == 1 + BATCH, stats
    assert stats.errors == {"InferenceError": 1} and stats.results == BATCH - 1


def test_the_engine_serves_normally_after_the_failure(faulty_engine, image_files, rendered):
    word = image_files["word.png"].read_bytes()
    stats = Stats()
    out = faulty_engine.predict_payloads([word] * 3, stats)
    assert [answer.to_dict()["text"] for answer in out] == [rendered["word.png"]] * 3
    assert stats.passes == 1
