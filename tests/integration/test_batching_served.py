"""Concurrent requests of two sizes reach the handler in TorchServe's batches; each answer
equals in-process inference."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from answers import assert_detects, assert_same
from conftest import DET_CONFIG
from images import encode, rendered_page
from mmocr_serve.results import DetectionResult

# two sizes the demo DBNet preprocesses to two shapes (long edge to 1024)
SIZES = [(640, 360), (640, 360), (640, 480), (640, 360)] * 2


def test_concurrent_mixed_size_requests_are_batched_by_torchserve(torchserve, det_checkpoint,
                                                                  reference_model, tmp_path):
    """dbnet.mar is built with batch size 4 and a 100 ms delay: 8 concurrent requests of
    two sizes reach the handler in batches; each answer equals in-process inference."""
    from mmocr.apis import model_inference

    pages = [rendered_page(830 + i, size) for i, size in enumerate(SIZES)]
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
