"""Every text-detection and text-recognition config shipped with mmocr 0.6.3 converts,
and batches.

For each config: initialise a checkpoint, convert it, build the engine from the unpacked
archive exactly as a TorchServe worker would (config re-read, checkpoint loaded with
weights_only, referenced files re-pointed), then run two images of one size as one batch
and check that each result equals that image's single-image inference. Random weights
often leave post-processing with nothing (no box, no text): there the network's outputs
(backbone and neck features) of the batched pass are compared with the single image's.
"""

import zipfile

import pytest

from answers import assert_same, has_content
from images import encode, text_image
from mmocr_serve_tools.archive import ArchiveSpec, archive_summary, build_archive
from mmocr_serve_tools.compare import compare
from mmocr_serve.adapter import UNBATCHABLE
from mmocr_serve.engine import load_engine
from mmocr_serve.errors import ServeError
from mmocr_serve.loading import save_random_checkpoint, shipped_configs_dir
from mmocr_serve.runtime import RuntimeOptions, trial_pass
from probes import forward_passes

pytestmark = pytest.mark.slow

# Random weights make TextSnake's post-processing (disks over a noise map) run for many
# minutes per image on a CPU, so its batched results are not compared here.
SLOW_WITH_RANDOM_WEIGHTS = {"TextSnake"}


def shipped_configs():
    root = shipped_configs_dir()
    found = []
    for task in ("textdet", "textrecog"):
        for path in sorted((root / task).rglob("*.py")):
            if "_base_" not in path.parts:
                found.append(str(path.relative_to(root)))
    return found


def test_there_are_39_configs():
    assert len(shipped_configs()) == 39


@pytest.mark.parametrize("config", shipped_configs())
def test_config_converts_and_loads(config, tmp_path):
    options = {}
    if config.endswith("sar_r31_parallel_decoder_chinese.py"):  # its dict is not shipped
        dict_file = tmp_path / "dict.txt"
        dict_file.write_text("\n".join("中文识别0123456789"))
        options = {"model.label_convertor.dict_file": str(dict_file)}
    ckpt = save_random_checkpoint(config, tmp_path / "model.pth", cfg_options=options)
    path = build_archive(ArchiveSpec(config=config, checkpoint=str(ckpt),
                                     output_folder=str(tmp_path / "store"), model_name="m",
                                     cfg_options=options))
    ckpt.unlink()
    summary = archive_summary(path)
    task = summary["manifest"]["task"]
    assert task == ("det" if config.startswith("textdet") else "recog")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path / "unpacked")
    engine = load_engine(tmp_path / "unpacked", options=RuntimeOptions(max_forward_batch=32))
    assert engine.task == task
    check_batching(engine)
    check_layout(engine)


def results(engine, images: list) -> list:
    """The engine's results for decoded images; an error fails the test."""
    outcomes = engine.predict_many(images)
    assert not [out for out in outcomes if isinstance(out, ServeError)], outcomes
    return outcomes


def check_batching(engine) -> None:
    adapter = engine.detector or engine.recognizer
    if adapter.architecture in UNBATCHABLE:  # documented; random DRRG weights are too slow
        assert not adapter.batches
        return
    if adapter.architecture in SLOW_WITH_RANDOM_WEIGHTS:
        assert adapter.batches  # its batched path is SingleStageTextDetector's, as PANet's
        return
    size = (640, 360) if engine.detector else (128, 32)
    images = [engine.decode(encode(text_image(text, size), "PNG")) for text in ("ab 12", "CD 34")]
    with forward_passes(adapter.model) as passes:
        batched = results(engine, images)
    assert passes == [2]
    datas = [adapter.prepare(image) for image in images]
    batched_features = None  # the batch's pass, run only where a result is empty
    for idx, (image, got) in enumerate(zip(images, batched)):
        single = results(engine, [image])[0].to_dict()
        if has_content(single):
            assert_same(single, got.to_dict())
        else:
            assert not has_content(got.to_dict())
            batched_features = batched_features or network_outputs(adapter, datas)
            assert_features_equal(batched_features[idx], network_outputs(adapter, [datas[idx]])[0])


def network_outputs(adapter, datas) -> list:
    """Each image's backbone (and neck) features from one pass over ``datas``."""
    import torch

    with torch.no_grad():
        features = adapter.model.extract_feat(adapter.network_input(datas))
    features = features if isinstance(features, (list, tuple)) else [features]
    return [[level[idx] for level in features] for idx in range(len(datas))]


def assert_features_equal(batched: list, single: list) -> None:
    import torch

    assert batched and all(level.abs().sum() > 0 for level in single)
    for got, want in zip(batched, single):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


def check_layout(engine) -> None:
    """A CPU worker's detector runs channels-last unless it has mmcv's compiled ops; where
    it does, results equal those of the contiguous layout."""
    import torch

    adapter = engine.detector or engine.recognizer
    mmcv_ops = [m for m in adapter.model.modules() if type(m).__module__.startswith("mmcv.ops")]
    assert adapter.channels_last == (engine.detector is not None and not mmcv_ops)
    if not adapter.channels_last:
        return
    images = [engine.decode(encode(text_image(text, size), "PNG"))
              for text, size in (("ef 56", (640, 360)), ("GH 78", (500, 300)))]
    if adapter.architecture in SLOW_WITH_RANDOM_WEIGHTS or not adapter.batches:
        # post-processing random maps takes minutes: compare the features instead
        data = adapter.prepare(images[0])
        channels_last = trial_pass(adapter, data)
        adapter.model.to(memory_format=torch.contiguous_format)
        contiguous = trial_pass(adapter, data)
        for got, want in zip(channels_last, contiguous):
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)
        return
    channels_last = [results(engine, [image])[0].to_dict() for image in images]
    adapter.model.to(memory_format=torch.contiguous_format)
    for image, got in zip(images, channels_last):
        diff = compare(results(engine, [image])[0].to_dict(), got)
        assert diff.ok, diff.problems
