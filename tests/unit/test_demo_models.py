"""The demo models without running them: what training left in their checkpoints, the
model card's claims, the held-out fonts and text apart from training's, and the pages
committed beside them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from clis import EVALUATE, FLOORS, tool_module
from conftest import DET_CHECKPOINT, DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG, ROOT


def test_evaluations_hmean_is_mmocrs_with_only_meeting_boxes_compared():
    from mmocr.core.evaluation.hmean_iou import eval_hmean_iou

    rng = np.random.default_rng(7)
    pages_gt, pages_pred = [], []
    for _ in range(3):  # words on a grid; predictions moved, scaled, some missing, some extra
        gt = [box(x, y, 60, 20) for x in range(0, 400, 80) for y in range(0, 320, 40)]
        pred = [box(b[0] + rng.uniform(-20, 20), b[1] + rng.uniform(-8, 8),
                    60 * rng.uniform(0.6, 1.3), 20 * rng.uniform(0.6, 1.3))
                for b in gt if rng.random() < 0.9]
        pages_gt.append(gt)
        pages_pred.append(pred + [box(*rng.uniform(0, 400, 2), 30, 30) for _ in range(5)])
    ignored = [[] for _ in pages_gt]
    exact, _ = eval_hmean_iou(pages_pred, pages_gt, ignored)
    with tool_module(EVALUATE).iou_of_meeting_boxes_only():
        fast, _ = eval_hmean_iou(pages_pred, pages_gt, ignored)
    assert 0 < exact["num_match"] < min(exact["num_gts"], exact["num_dets"])
    assert fast == exact


def box(x: float, y: float, w: float, h: float) -> list:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def test_evaluation_without_the_weights_says_what_is_missing(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy(EVALUATE, tools)
    result = subprocess.run([sys.executable, str(tools / EVALUATE.name)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "the demo models are missing: demo/models/dbnet_demo.py" in result.stderr
    assert "python tools/train_demo_models.py" in result.stderr


@pytest.mark.parametrize("config,checkpoint", [(DET_CONFIG, DET_CHECKPOINT),
                                               (RECOG_CONFIG, RECOG_CHECKPOINT)])
def test_checkpoints_are_what_mmocrs_runner_wrote(config, checkpoint):
    """The converter is exercised on a real training output: meta and all."""
    import mmcv
    import torch

    ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    meta = ckpt["meta"]
    cfg = mmcv.Config.fromfile(config)
    # the runner saves during the last iteration's hooks, before it counts that iteration
    assert meta["iter"] + 1 == cfg.runner.max_iters and meta["seed"] == 2026
    assert meta["mmcv_version"] == mmcv.__version__ and meta["mmocr_version"] == "0.6.3"
    assert "optimizer" not in ckpt and ckpt["state_dict"]
    assert "'.mim', 'configs'," in open(config).read()  # inherits mmocr's shipped config
    assert cfg.dist_params == dict(backend="nccl")  # from its _base_ default_runtime.py


def test_committed_pages_are_what_synth_renders():
    from PIL import Image

    from mmocr_serve_tools import synth

    pages = {"demo_page": synth.demo_page(), "benchmark_page": synth.benchmark_page()}
    for name, page in pages.items():
        stored = np.asarray(Image.open(ROOT / "demo" / f"{name}.jpg"), np.float32)
        assert stored.shape == page.image.shape
        moved = np.roll(page.image, 3, axis=1).astype(np.float32)  # the same page, 3 px over
        # JPEG's loss, against what moving the same ink by 3 pixels changes
        assert np.abs(stored - page.image).mean() < 0.5 * np.abs(stored - moved).mean(), name
    assert synth.benchmark_page().lines >= 20
    demo = synth.demo_page()
    assert " ".join(w.text for w in demo.words) == synth.DEMO_TEXT and demo.lines >= 4


def test_detected_crops_are_the_found_words_cut_by_the_detectors_own_boxes():
    from mmocr.datasets.pipelines.crop import crop_img

    from mmocr_serve_tools import synth

    rng = np.random.default_rng(3)
    page = synth.render_page(rng)
    boxes = []
    for word in page.words[:6]:  # found a fifth of a line low; the page's other words missed
        quad = np.array(word.quad).reshape(4, 2)
        low = quad + [0, 0.2 * np.linalg.norm(quad[3] - quad[0])]
        boxes.append([float(v) for v in low.reshape(-1)] + [0.9])  # and a score
    boxes.append([0, 0, 4, 0, 4, 4, 0, 4, 0.5])  # a box on no word
    crops = synth.detected_crops(rng, page, boxes)
    assert [text for _, text in crops] == [word.text for word in page.words[:6]]
    for (image, _), box in zip(crops, boxes):
        assert image.size and np.array_equal(image, crop_img(page.image, box[:8]))
    some = synth.detected_crops(rng, page, boxes, limit=4)
    assert len(some) == 4 and {text for _, text in some} <= {text for _, text in crops}


def test_held_out_pages_share_no_font_and_no_text_source_with_training():
    from mmocr_serve_tools import synth

    train, held_out = synth.font_files(synth.TRAIN), synth.font_files(synth.HELD_OUT)
    assert len(train) > 100 and len(held_out) > 10 and not set(train) & set(held_out)
    families = {os.path.basename(f).split("-")[0].rstrip("0123456789") for f in held_out}
    assert {"LiberationSerif", "LiberationSans", "LiberationMono", "Caladea", "Lato"} <= families
    assert not any(os.path.basename(f).startswith(synth.HELD_OUT_FAMILIES) for f in train)
    # running text: no run of six words of the held-out text is in the training text
    def runs(words):
        return {tuple(words[i:i + 6]) for i in range(len(words) - 5)}
    held_out_text, train_text = synth.corpus(synth.HELD_OUT), synth.corpus(synth.TRAIN)
    assert len(held_out_text) > 10000 and len(train_text) > 100000
    assert not runs(held_out_text) & runs(train_text)
    # random strings: a hash splits them, and held-out pages hold the held-out text alone
    rng = np.random.default_rng(0)
    strings = {synth.random_word(rng, synth.TRAIN) for _ in range(2000)}
    held_out_strings = {synth.random_word(rng, synth.HELD_OUT) for _ in range(300)}
    assert len(strings) > 1500 and len(held_out_strings) > 250
    assert not strings & held_out_strings
    for seed in range(4):
        page = synth.render_page(np.random.default_rng(seed), synth.HELD_OUT)
        assert page.words and {w.text for w in page.words} <= set(held_out_text)


def test_the_model_card_states_what_the_configs_and_checkpoints_hold():
    import mmcv

    from mmocr_serve_tools import synth

    card = (ROOT / "demo" / "models" / "README.md").read_text()
    sizes = [DET_CHECKPOINT.stat().st_size, RECOG_CHECKPOINT.stat().st_size]
    assert sum(sizes) <= 40e6, sizes
    for config in (DET_CONFIG, RECOG_CONFIG):
        iters = mmcv.Config.fromfile(config).runner.max_iters
        assert f"| {iters:,} " in card, f"the card names no run of {iters:,} iterations"
    # the alphabet the recognizer reads is the one training and evaluation render
    from mmocr.models.textrecog.convertors.base import BaseConvertor

    assert mmcv.Config.fromfile(RECOG_CONFIG).model.label_convertor.dict_type == "DICT90"
    assert "DICT90" in card and synth.CHARSET == "".join(BaseConvertor.dicts["DICT90"])
    for family in synth.HELD_OUT_FAMILIES:
        assert family in card, family
    assert "/usr/share/common-licenses" in card and "docstrings" in card
    for number in FLOORS:
        assert f"{number:.2f}" in card


