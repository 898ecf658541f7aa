"""``cpu_precision=bf16``: the networks run in bfloat16 and the answers stay within bf16's
measured tolerance of MMOCR's float32 ones; a CPU without native bf16 keeps float32 with a
warning; a bad value is refused."""

from __future__ import annotations

import logging

import pytest
import torch

from answers import assert_reads, has_content
from conftest import DET_CHECKPOINT, DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG
from mmocr_serve.adapter import ModelAdapter
from mmocr_serve.engine import engine_from_models
from mmocr_serve.errors import ModelLoadError
from mmocr_serve.loading import load_model
from mmocr_serve.runtime import BF16_FLAGS, RuntimeOptions, cpu_flags, run_in_bfloat16, use_bfloat16
from mmocr_serve_tools.compare import BF16, compare

NATIVE_BF16 = any(flag in cpu_flags() for flag in BF16_FLAGS)
MODELS = {"det": (DET_CONFIG, DET_CHECKPOINT), "recog": (RECOG_CONFIG, RECOG_CHECKPOINT)}


@pytest.fixture(scope="module")
def engines():
    return {precision: engine_from_models(MODELS, "cpu", RuntimeOptions(cpu_precision=precision))
            for precision in ("fp32", "bf16")}


def test_a_bad_precision_is_refused_with_the_choices():
    assert RuntimeOptions.from_mapping({"cpu_precision": "bf16"}).cpu_precision == "bf16"
    with pytest.raises(ModelLoadError, match="cpu_precision must be one of fp32, bf16, not .fp16."):
        RuntimeOptions.from_mapping({"cpu_precision": "fp16"})


def test_without_native_bf16_the_model_stays_float32_with_a_warning(caplog, image_files):
    adapter = ModelAdapter(load_model(DET_CONFIG, DET_CHECKPOINT))
    with caplog.at_level(logging.WARNING):
        assert not use_bfloat16(adapter, flags=frozenset({"avx2", "avx512f"}))
    assert "cpu_precision=bf16 ignored: this CPU has neither avx512_bf16 nor amx_bf16" in caplog.text
    assert not adapter.bfloat16
    img = adapter.network_input([adapter.prepare(adapter.load_array(
        {"img": _page(image_files)})["img"])])
    with torch.no_grad():
        features = adapter.model.extract_feat(img)
    assert all(f.dtype == torch.float32 for f in features)
    assert "extract_feat" not in vars(adapter.model)  # MMOCR's own method, unwrapped


def test_the_network_runs_in_bfloat16_and_hands_float32_to_post_processing(image_files):
    """run_in_bfloat16 itself, on any CPU (emulated where bf16 is not native)."""
    model = load_model(DET_CONFIG, DET_CHECKPOINT)
    seen = []
    model.backbone.register_forward_hook(lambda _m, _i, out: seen.append(out[0].dtype))
    run_in_bfloat16(model)
    adapter = ModelAdapter(model)
    img = adapter.network_input([adapter.prepare(adapter.load_array(
        {"img": _page(image_files)})["img"])])
    with torch.no_grad():
        maps = model.bbox_head(model.extract_feat(img))
    assert seen == [torch.bfloat16]  # inside: bf16
    assert maps.dtype == torch.float32 and (maps[:, 0] > 0.3).any()  # out: float32, text in it


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16: the archive runs "
                    "float32 (test_without_native_bf16_the_model_stays_float32_with_a_warning)")
def test_end_to_end_answers_stay_within_bf16s_tolerance_of_float32(engines, image_files, rendered):
    assert engines["bf16"].detector.bfloat16 and engines["bf16"].recognizer.bfloat16
    for name in ("scene.jpg", "scene.png"):
        payload = image_files[name].read_bytes()
        fp32, bf16 = (engines[p].predict_payloads([payload])[0].to_dict() for p in ("fp32", "bf16"))
        assert has_content(fp32)
        assert_reads(rendered[name], bf16)
        assert fp32 != bf16  # bf16 did run: the scores moved
        diff = compare(fp32, bf16, BF16)
        assert diff.ok, diff.problems


def _page(image_files):
    import cv2

    return cv2.imread(str(image_files["scene.jpg"]))
