"""``--backend onnxruntime`` served by a real TorchServe: the recognizer passes
test_torchserve.py, and an end-to-end archive with it equals readtext."""

from __future__ import annotations
import pytest

from clis import ROOT, check
from answers import assert_reads, assert_same
from conftest import DET_CHECKPOINT, DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG


def test_served_onnx_recognizer_passes_test_torchserve(onnx_server, image_files):
    done = check(ROOT / "demo" / "demo_text_recog.jpg", image_files["word.png"],
                 RECOG_CONFIG, RECOG_CHECKPOINT, "crnn_onnx", "--inference-addr",
                 onnx_server.inference_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "word.png" in done.stdout and "demo_text_recog.jpg" in done.stdout


def test_served_end_to_end_with_an_onnx_recognizer_equals_readtext(onnx_server, image_files,
                                                                   rendered, readtext):
    import requests

    for name in ("scene.jpg", "scene.png"):
        served = requests.post(f"{onnx_server.inference_url}/predictions/ocr_onnx",
                               data=image_files[name].read_bytes(), timeout=120).json()
        assert_reads(rendered[name], served)
        assert_same(readtext(str(image_files[name])), served)
    done = check(image_files["scene.jpg"], DET_CONFIG, DET_CHECKPOINT, "ocr_onnx",
                 "--recog-config", RECOG_CONFIG, "--recog-checkpoint", RECOG_CHECKPOINT,
                 "--inference-addr", onnx_server.inference_url)
    assert done.returncode == 0, done.stdout + done.stderr
    ready = [line for line in (onnx_server.workdir / "logs" / "model_log.log").read_text()
             .splitlines() if "model ready" in line]
    assert len(ready) == 2, ready


@pytest.fixture(scope="module")
def onnx_server(onnx_store, workdir):
    from mmocr_serve_tools.server import TorchServeProcess

    server = TorchServeProcess(model_store=onnx_store, workdir=workdir / "onnx-torchserve",
                               models=["crnn_onnx=crnn_onnx.mar", "ocr_onnx=ocr_onnx.mar"])
    with server:
        yield server
