"""Every text-detection and text-recognition config shipped with mmocr 0.6.3 converts,
and batches.

For each config: initialise a checkpoint, convert it, build the engine from the unpacked
archive exactly as a TorchServe worker would (config re-read, checkpoint loaded with
weights_only, referenced files re-pointed), then run two images of one size as one batch
and check that each result equals that image's single-image inference. Random weights
often leave post-processing with nothing (no box, no text): there the network's outputs
(backbone and neck features) of the batched pass are compared with the single image's.

The detectors run at a test scale of at most 320 px, set as a user would (the converter's
cfg_options, kept in the archive's config): their shipped scales, up to 4068 x 1024 px,
cost minutes a config here and change nothing that the test checks.
"""

import zipfile

import pytest
import torch

from answers import assert_same, has_content
from images import encode, text_image
from mmocr_serve_tools.archive import ArchiveSpec, archive_summary, build_archive
from mmocr_serve.adapter import UNBATCHABLE
from mmocr_serve.engine import load_engine
from mmocr_serve.errors import ServeError
from mmocr_serve.loading import load_config, save_random_checkpoint, shipped_configs_dir
from mmocr_serve.runtime import RuntimeOptions, trial_pass
from probes import forward_passes

pytestmark = pytest.mark.slow

# Random weights make TextSnake's post-processing (disks over a noise map) run for many
# minutes per image on a CPU, so there the network's outputs are compared, not results.
SLOW_WITH_RANDOM_WEIGHTS = {"TextSnake"}
TEST_SCALE = (320, 320)


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
    options = conversion_options(config, tmp_path)
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
    check_batching_and_layout(engine)


def conversion_options(config: str, tmp_path) -> dict:
    """The cfg_options the config converts with: a detector's test scale, and the Chinese
    SAR's dict file (not shipped)."""
    if config.endswith("sar_r31_parallel_decoder_chinese.py"):
        dict_file = tmp_path / "dict.txt"
        dict_file.write_text("\n".join("中文识别0123456789"))
        return {"model.label_convertor.dict_file": str(dict_file)}
    if not config.startswith("textdet"):
        return {}
    steps = [step["type"] for step in load_config(config).data.test.pipeline]
    return {f"data.test.pipeline.{steps.index('MultiScaleFlipAug')}.img_scale": TEST_SCALE}


def results(engine, images: list) -> list:
    """The engine's results for decoded images; an error fails the test."""
    outcomes = engine.predict_many(images)
    assert not [out for out in outcomes if isinstance(out, ServeError)], outcomes
    return outcomes


def check_batching_and_layout(engine) -> None:
    """Two images of one size in one pass give each image's own result; a CPU detector runs
    channels-last unless it has mmcv's compiled ops, with the contiguous layout's results."""
    adapter = engine.detector or engine.recognizer
    mmcv_ops = [m for m in adapter.model.modules() if type(m).__module__.startswith("mmcv.ops")]
    assert adapter.channels_last == (engine.detector is not None and not mmcv_ops)
    size = (640, 360) if engine.detector else (128, 32)
    images = [engine.decode(encode(text_image(text, size), "PNG")) for text in ("ab 12", "CD 34")]
    datas = [adapter.prepare(image) for image in images]
    if engine.detector:  # at the test scale
        assert max(adapter.network_input(datas[:1]).shape[-2:]) <= max(TEST_SCALE)
    if adapter.architecture in UNBATCHABLE:  # documented; random DRRG weights are too slow
        assert not adapter.batches
        check_layout_features(adapter, datas[0])
        return
    assert adapter.batches
    if adapter.architecture in SLOW_WITH_RANDOM_WEIGHTS:
        batched = network_outputs(adapter, datas)
        for idx, data in enumerate(datas):
            assert_features_equal(batched[idx], network_outputs(adapter, [data])[0])
        check_layout_features(adapter, datas[0])
        return
    with forward_passes(adapter.model) as passes:
        batched = results(engine, images)
    assert passes == [2]
    singles = [results(engine, [image])[0].to_dict() for image in images]
    batched_features = None  # the batch's pass, run only where a result is empty
    for idx, (single, got) in enumerate(zip(singles, batched)):
        if has_content(single):
            assert_same(single, got.to_dict())
        else:
            assert not has_content(got.to_dict())
            batched_features = batched_features or network_outputs(adapter, datas)
            assert_features_equal(batched_features[idx], network_outputs(adapter, [datas[idx]])[0])
    if not adapter.channels_last:
        return
    if not has_content(singles[0]):  # two empty results would prove nothing
        check_layout_features(adapter, datas[0])
        return
    adapter.model.to(memory_format=torch.contiguous_format)
    assert_same(singles[0], results(engine, [images[0]])[0].to_dict())


def network_outputs(adapter, datas) -> list:
    """Each image's backbone (and neck) features from one pass over ``datas``."""
    with torch.no_grad():
        features = levels(adapter.model.extract_feat(adapter.network_input(datas)))
    return [[level[idx] for level in features] for idx in range(len(datas))]


def levels(features) -> list:
    """A backbone's or neck's output as a list of feature levels."""
    return list(features) if isinstance(features, (list, tuple)) else [features]


def assert_features_equal(batched: list, single: list) -> None:
    assert batched and all(level.abs().sum() > 0 for level in single)
    for got, want in zip(batched, single):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


def check_layout_features(adapter, data: dict) -> None:
    """Where results cannot be compared (post-processing random maps takes minutes, or finds
    nothing), the channels-last features equal the contiguous layout's."""
    if not adapter.channels_last:
        return
    channels_last = levels(trial_pass(adapter, data))
    adapter.model.to(memory_format=torch.contiguous_format)
    assert_features_equal(channels_last, levels(trial_pass(adapter, data)))
