"""DBNet's head at inference computes the probability map alone (``adapter.probability_map_only``):
the same map, bit for bit, and the same answers as MMOCR's own full head."""

import pytest
import torch

from conftest import DET_CHECKPOINT, DET_CONFIG
from mmocr_serve.adapter import ModelAdapter, probability_map_only
from mmocr_serve.loading import load_model


@pytest.fixture(scope="module")
def models():
    """MMOCR's DBNet as built (the full head), and the same weights with the short one."""
    full = load_model(DET_CONFIG, DET_CHECKPOINT).eval()
    short = ModelAdapter(load_model(DET_CONFIG, DET_CHECKPOINT).eval())
    return full, short


def test_the_probability_map_is_the_full_heads_channel_0_bit_for_bit(models, image_files):
    from mmocr.models.textdet.dense_heads import DBHead

    full, short = models
    assert short.probability_map_only
    data = short.prepare(short_image(image_files))
    with torch.no_grad():
        features = full.extract_feat(short.network_input([data]))
        maps = DBHead.forward(full.bbox_head, features)  # prob, threshold, binary
        prob = short.model.bbox_head(features)
    assert maps.shape[1] == 3 and prob.shape[1] == 2
    assert (maps[:, 0] > 0.3).any()  # a page: text in the map
    assert torch.equal(prob[:, 0], maps[:, 0]) and torch.equal(prob[:, 1], maps[:, 0])


def test_answers_equal_model_inference_and_the_full_head_exactly(models, image_files, rendered):
    """One image: MMOCR's ``model_inference``; a batch of two: the same batch through the
    full head (a batched pass may differ from a single one in the last digits, either way)."""
    from mmocr.apis import model_inference

    from mmocr_serve.results import DetectionResult

    full, short = models
    expected = DetectionResult.from_mmocr(model_inference(full, str(image_files["scene.jpg"])))
    assert len(expected.instances) >= len(rendered["scene.jpg"].words)
    data = short.prepare(short_image(image_files))
    assert [short.typed(raw) for raw in short.forward([data])] == [expected]
    full_adapter = ModelAdapter(full)
    del full.bbox_head.forward  # MMOCR's own forward again, for the batched comparison
    assert not full_adapter.model.bbox_head.__dict__.get("forward")
    assert short.forward([data, data]) == full_adapter.forward([data, data])


def test_other_heads_are_left_alone():
    from mmocr_serve.loading import save_random_checkpoint

    assert not probability_map_only(load_model(  # PANet: its own head and post-processing
        "textdet/panet/panet_r18_fpem_ffm_600e_icdar2015.py",
        save_random_checkpoint("textdet/panet/panet_r18_fpem_ffm_600e_icdar2015.py",
                               "/tmp/mmocr-serve-panet-random.pth")))


def short_image(image_files):
    from mmocr_serve.decode import decode_image

    return decode_image(image_files["scene.jpg"].read_bytes())
