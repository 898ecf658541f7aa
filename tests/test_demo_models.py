"""The demo models: their held-out accuracy (served too), what training left in their
checkpoints, the pages committed beside them, and the training script on a tiny run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import DET_CHECKPOINT, DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG, ROOT

EVALUATE = ROOT / "tools" / "evaluate_demo_models.py"
TRAIN = ROOT / "tools" / "train_demo_models.py"
LAST_LINE = re.compile(r"recognizer word accuracy ([\d.]+); detector hmean ([\d.]+); "
                       r"end-to-end word accuracy ([\d.]+)")


@pytest.mark.integration
def test_held_out_accuracy_meets_the_floors_in_process_and_served():
    result = subprocess.run([sys.executable, str(EVALUATE)], capture_output=True, text=True,
                            timeout=900)  # the whole default set: about a minute
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    recognizer, detector, end_to_end = map(float, LAST_LINE.fullmatch(last).groups())
    assert recognizer >= 0.95 and detector >= 0.90 and end_to_end >= 0.90, last
    served = re.search(r"end-to-end served .*: \d+ read exactly: ([\d.]+); answers equal "
                       r"readtext's on 10 of 10 pages", result.stdout)
    in_process = re.search(r"end-to-end in-process .*: ([\d.]+)\n", result.stdout)
    assert served and in_process and served.group(1) == in_process.group(1), result.stdout


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

    from mmocr_serve import synth

    pages = {"demo_page": synth.demo_page(), "benchmark_page": synth.benchmark_page()}
    for name, page in pages.items():
        stored = np.asarray(Image.open(ROOT / "demo" / f"{name}.jpg"), np.float32)
        assert stored.shape == page.image.shape
        other = synth.render_page(np.random.default_rng(99), size=stored.shape[1::-1]).image
        # JPEG's loss (on pixel noise) against the difference to another page
        assert np.abs(stored - page.image).mean() < 6 < 20 < np.abs(stored - other).mean()
    assert synth.benchmark_page().lines >= 20


def test_held_out_words_are_never_trained_on():
    from mmocr_serve import synth

    rng = np.random.default_rng(0)
    train = {synth.random_word(rng, synth.TRAIN) for _ in range(2000)}
    held_out = {synth.random_word(rng, synth.HELD_OUT) for _ in range(300)}
    assert len(train) > 1500 and len(held_out) > 250 and not train & held_out
    page = synth.render_page(np.random.default_rng(1), synth.HELD_OUT)
    assert page.words and all(synth.split_of(w.text) == synth.HELD_OUT for w in page.words)


@pytest.mark.slow
def test_training_script_trains_both_models_a_few_iterations(tmp_path):
    result = subprocess.run([sys.executable, str(TRAIN), "--det-iters", "2", "--recog-iters", "2",
                             "--det-pages", "3", "--recog-pages", "2",
                             "--data-dir", str(tmp_path / "data"),
                             "--work-dir", str(tmp_path / "work"),
                             "--output-dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[det] iter 2/2  loss " in result.stdout and "[recog] iter 2/2  loss " in result.stdout
    for name in ("dbnet_demo.pth", "crnn_demo.pth"):
        assert (tmp_path / "out" / name).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "work"]
