"""A ``--cpu-precision bf16`` end-to-end archive served by a real TorchServe: it passes
test_torchserve.py's bf16 tolerance against float32 readtext; on a CPU with native bf16 its
answers are not float32's (so bf16 ran), elsewhere the worker says it kept float32."""

from __future__ import annotations

import pytest

from answers import assert_reads
from clis import check, convert
from conftest import DET_CHECKPOINT, DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG
from mmocr_serve.runtime import BF16_FLAGS, cpu_flags

E2E = [DET_CONFIG, DET_CHECKPOINT, "--recog-config", RECOG_CONFIG,
       "--recog-checkpoint", RECOG_CHECKPOINT]


@pytest.fixture(scope="module")
def bf16_server(workdir):
    from mmocr_serve_tools.server import TorchServeProcess

    store = workdir / "bf16-store"
    done = convert(*E2E, "--output-folder", store, "--model-name", "ocr_bf16",
                   "--cpu-precision", "bf16")
    assert done.returncode == 0, done.stdout + done.stderr
    with TorchServeProcess(model_store=store, workdir=workdir / "bf16-torchserve",
                           models=["ocr_bf16=ocr_bf16.mar"]) as server:
        yield server


def test_a_bf16_archive_passes_test_torchserve_within_bf16s_tolerance(bf16_server, image_files,
                                                                      rendered):
    import requests

    for name in ("scene.jpg", "scene.png"):
        served = requests.post(f"{bf16_server.inference_url}/predictions/ocr_bf16",
                               data=image_files[name].read_bytes(), timeout=120).json()
        assert_reads(rendered[name], served)
    args = [image_files["scene.jpg"], image_files["scene.png"], DET_CONFIG, DET_CHECKPOINT,
            "ocr_bf16", "--recog-config", RECOG_CONFIG, "--recog-checkpoint", RECOG_CHECKPOINT,
            "--inference-addr", bf16_server.inference_url]
    done = check(*args, "--cpu-precision", "bf16")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 images match" in done.stdout
    log = (bf16_server.workdir / "logs" / "model_log.log").read_text()
    if any(flag in cpu_flags() for flag in BF16_FLAGS):
        assert log.count("runs its network in bfloat16") == 2, log[-3000:]  # DBNet and CRNN
        exact = check(*args)  # float32's tolerance: bf16's answers are not float32's
        assert exact.returncode == 1 and "MISMATCH" in exact.stdout, exact.stdout
    else:
        assert "cpu_precision=bf16 ignored" in log, log[-3000:]
