"""``--backend onnxruntime``: the recognizer's network exported, checked and packed by the
converter, run in ONNX Runtime with MMOCR's own pipeline around it, in-process and served
by a real TorchServe; and the models it refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from answers import assert_reads, assert_same
from conftest import (DET_CHECKPOINT, DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG, unpack)
from mmocr_serve_tools.archive import archive_summary

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "tools" / "deployment" / "mmocr2torchserve.py"
CHECK = ROOT / "tools" / "deployment" / "test_torchserve.py"


def run_tool(tool: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(tool), *map(str, args)], capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def onnx_store(workdir) -> Path:
    """crnn_onnx.mar (batch size 1) and ocr_onnx.mar, made with the converter's CLI."""
    store = workdir / "onnx-store"
    for name, extra in (("crnn_onnx", [RECOG_CONFIG, RECOG_CHECKPOINT, "--batch-size", "1"]),
                        ("ocr_onnx", [DET_CONFIG, DET_CHECKPOINT, "--recog-config", RECOG_CONFIG,
                                      "--recog-checkpoint", RECOG_CHECKPOINT])):
        done = run_tool(CLI, *extra, "--output-folder", store, "--model-name", name,
                        "--backend", "onnxruntime")
        assert done.returncode == 0, done.stdout + done.stderr
    return store


def test_the_archive_carries_the_checked_network(onnx_store):
    summary = archive_summary(onnx_store / "crnn_onnx.mar")
    assert {"recog.onnx", "recog.pth", "recog_config.py", "sitecustomize.py"} <= set(summary["files"])
    assert summary["manifest"]["models"]["recog"]["network"] == "recog.onnx"
    ocr = archive_summary(onnx_store / "ocr_onnx.mar")["manifest"]["models"]
    assert ocr["recog"]["network"] == "recog.onnx" and ocr["det"]["network"] is None


def test_in_process_onnx_reads_as_model_inference(onnx_store, workdir, image_files, rendered,
                                                  reference_model):
    from mmocr.apis import model_inference

    from mmocr_serve.engine import load_engine
    from mmocr_serve.results import Recognition

    engine = load_engine(unpack(onnx_store / "crnn_onnx.mar", workdir / "unpacked" / "crnn_onnx"))
    assert engine.recognizer.network is not None
    model = reference_model(RECOG_CONFIG, RECOG_CHECKPOINT)
    for name in ("word.png", "word.jpg"):
        (answer,) = engine.predict_payloads([image_files[name].read_bytes()])
        expected = Recognition.from_mmocr(model_inference(model, str(image_files[name])))
        assert expected.text == rendered[name]
        assert_same(expected.to_dict(), answer.to_dict())


@pytest.fixture(scope="module")
def onnx_server(onnx_store, workdir):
    from mmocr_serve_tools.server import TorchServeProcess

    server = TorchServeProcess(model_store=onnx_store, workdir=workdir / "onnx-torchserve",
                               models=["crnn_onnx=crnn_onnx.mar", "ocr_onnx=ocr_onnx.mar"])
    with server:
        yield server


@pytest.mark.integration
def test_served_onnx_recognizer_passes_test_torchserve(onnx_server, image_files):
    done = run_tool(CHECK, ROOT / "demo" / "demo_text_recog.jpg", image_files["word.png"],
                    RECOG_CONFIG, RECOG_CHECKPOINT, "crnn_onnx", "--inference-addr",
                    onnx_server.inference_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "word.png" in done.stdout and "demo_text_recog.jpg" in done.stdout


@pytest.mark.integration
def test_served_end_to_end_with_an_onnx_recognizer_equals_readtext(onnx_server, image_files,
                                                                   rendered, readtext):
    import requests

    for name in ("scene.jpg", "scene.png"):
        served = requests.post(f"{onnx_server.inference_url}/predictions/ocr_onnx",
                               data=image_files[name].read_bytes(), timeout=120).json()
        assert_reads(rendered[name], served)
        assert_same(readtext(str(image_files[name])), served)
    done = run_tool(CHECK, image_files["scene.jpg"], DET_CONFIG, DET_CHECKPOINT, "ocr_onnx",
                    "--recog-config", RECOG_CONFIG, "--recog-checkpoint", RECOG_CHECKPOINT,
                    "--inference-addr", onnx_server.inference_url)
    assert done.returncode == 0, done.stdout + done.stderr
    ready = [line for line in (onnx_server.workdir / "logs" / "model_log.log").read_text()
             .splitlines() if "model ready" in line]
    assert len(ready) == 2, ready


def test_a_detector_is_refused_and_nothing_is_written(tmp_path):
    done = run_tool(CLI, DET_CONFIG, DET_CHECKPOINT, "--output-folder", tmp_path / "out",
                    "--backend", "onnxruntime")
    assert done.returncode == 1
    assert "--backend onnxruntime is for text recognizers" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_network_that_does_not_export_is_refused_with_the_reason(tmp_path):
    """SAR's encoder indexes its features by each crop's valid ratio, which the exporter
    cannot turn into ONNX (docs/onnx.md lists each recognizer's outcome)."""
    from mmocr_serve.loading import save_random_checkpoint

    config = "textrecog/sar/sar_r31_parallel_decoder_academic.py"
    checkpoint = save_random_checkpoint(config, tmp_path / "sar.pth")
    done = run_tool(CLI, config, checkpoint, "--output-folder", tmp_path / "out",
                    "--backend", "onnxruntime")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SARNet's network does not export to ONNX (opset 17): " in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
