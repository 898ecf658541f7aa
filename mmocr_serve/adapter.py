"""One MMOCR 0.6.3 detector or recognizer as the engine runs it: its test pipeline, the
collated forward pass, and its raw results turned into typed ones.

Which images may share a pass is the model's to say (``ModelAdapter.batch_key``); how
passes are formed and failures isolated is ``passes``'s.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import List, Union

import numpy as np

from .errors import UnprocessableImage
from .loading import model_task
from .onnx_backend import results_from_scores
from .results import DetectionResult, Recognition
from .tasks import DET, RECOG

logger = logging.getLogger(__name__)

# Architectures whose test forward cannot take more than one image, with the reason.
UNBATCHABLE = {
    "DRRG": "its head builds a graph of text components from one image's maps inside the "
            "forward pass (DRRGHead.single_test), so a forward pass holds one image",
}


def _slice_batch(tree, idx: int):
    """Image ``idx`` of nested lists of batched tensors, batch dimension kept."""
    if isinstance(tree, (list, tuple)):
        return type(tree)(_slice_batch(item, idx) for item in tree)
    return tree[idx:idx + 1]


def _fcenet_batched_test(model, img, img_metas) -> list:
    # FCENet.simple_test post-processes only the first image of a batch; the network itself
    # takes a batch, so post-process each image's slice of its maps.
    preds = model.bbox_head(model.extract_feat(img))
    return [model.bbox_head.get_boundary(_slice_batch(preds, idx), [meta], True)
            for idx, meta in enumerate(img_metas)]


def _mask_rcnn_batched_test(model, img, img_metas) -> list:
    # OCRMaskRCNN.simple_test turns only the first image's masks into boundaries.
    from mmdet.models.detectors import TwoStageDetector

    results = TwoStageDetector.simple_test(model, img, img_metas, rescale=True)
    return [model.get_boundary(result) for result in results]


# Architectures whose own simple_test mishandles a batch, with a batched replacement.
BATCHED_TESTS = {"FCENet": _fcenet_batched_test, "OCRMaskRCNN": _mask_rcnn_batched_test}


def probability_map_only(model) -> bool:
    """Make a DBNet head (MMOCR's ``DBHead``, DBNet and DBNet++) compute at test time only
    what its post-processing reads: ``DBPostprocessor`` reads the probability map alone
    (channel 0), and the threshold and binary maps only lengthen the pass
    (benchmarks/dbnet-head.md). The probability branch gives the same map, bit for bit.

    Returns:
        Whether the head was changed (it must be a ``DBHead`` with a ``DBPostprocessor``).
    """
    from mmocr.models.textdet.dense_heads import DBHead
    from mmocr.models.textdet.postprocess import DBPostprocessor

    head = getattr(model, "bbox_head", None)
    if type(head) is not DBHead or type(head.postprocessor) is not DBPostprocessor:
        return False

    def probability_forward(inputs):
        prob_map = head.binarize(inputs)
        # a second channel, a view of the first (no copy): get_boundary squeezes the map,
        # which must keep its channel axis, as the three-channel map does
        return prob_map.expand(-1, 2, -1, -1)

    head.forward = probability_forward
    return True


def resolved_test_pipeline(cfg) -> list:
    """The test pipeline steps, resolved the way ``mmocr.apis.model_inference`` does."""
    from mmocr.utils import is_2dlist

    test = cfg.data.test
    if test.get("pipeline", None) is None:
        datasets = test.datasets
        pipeline = datasets[0][0].pipeline if is_2dlist(datasets) else datasets[0].pipeline
    else:
        pipeline = test.pipeline
    if is_2dlist(pipeline):
        pipeline = pipeline[0]
    return copy.deepcopy(list(pipeline))


class ModelAdapter:
    """One MMOCR detector or recognizer with its test pipeline.

    Images go in already decoded with the flag of the model's own loading step
    (``image_flag``), so a result equals ``model_inference`` on the same image file.
    """

    def __init__(self, model, max_batch: int = 1):
        from mmdet.datasets import replace_ImageToTensor
        from mmdet.datasets.pipelines import Compose

        from mmocr.datasets.pipelines import LoadImageFromNdarray

        self.model = model
        self.task = model_task(model.cfg)
        steps = resolved_test_pipeline(model.cfg)
        load = steps[0]
        self.image_flag = load.get("color_type", "color")
        self.channel_order = load.get("channel_order", "bgr")
        self.to_float32 = bool(load.get("to_float32", False))
        with warnings.catch_warnings():  # it warns that it replaces ImageToTensor; intended
            warnings.simplefilter("ignore", UserWarning)
            self.transforms = Compose(replace_ImageToTensor(steps[1:]))
        self.device = next(model.parameters()).device
        # readtext feeds crops as ndarrays: MMOCR's own ndarray loading step, built once.
        self.load_array = LoadImageFromNdarray(color_type=self.image_flag,
                                               to_float32=self.to_float32)
        self.max_batch = max(1, int(max_batch))  # images in one forward pass
        self.channels_last = False  # set by runtime.use_channels_last
        self.bfloat16 = False  # set by runtime.use_bfloat16
        self.network = None  # a recognizer's onnx_backend.OnnxNetwork, where it has one
        self.architecture = type(model).__name__
        self.probability_map_only = self.task == DET and probability_map_only(model)
        self.batches = self.architecture not in UNBATCHABLE
        if not self.batches:
            logger.warning("mmocr-serve: %s runs one image per forward pass: %s",
                           self.architecture, UNBATCHABLE[self.architecture])

    def prepare(self, image: np.ndarray, from_array: bool = False) -> dict:
        """One decoded image through the test pipeline.

        ``from_array`` feeds the image as ``model_inference`` feeds an ndarray
        (``LoadImageFromNdarray``), which is how ``readtext`` feeds crops.

        Raises:
            UnprocessableImage: the model's preprocessing rejects the image.
        """
        load = self._load_as_array if from_array else self._load_as_file
        try:
            return self.transforms(load(image))
        except Exception as err:  # the input, not the server, is at fault
            raise UnprocessableImage(
                f"the model's preprocessing cannot take this {image.shape[1]}x{image.shape[0]} "
                f"image: {type(err).__name__}: {str(err).strip().splitlines()[-1]}") from None

    def _load_as_file(self, image: np.ndarray) -> dict:
        # The fields LoadImageFromFile sets, without a file.
        img = image.astype(np.float32) if self.to_float32 else image
        return dict(img_info=dict(width=img.shape[1], height=img.shape[0]), img_prefix=None,
                    ann_info=None, bbox_fields=[], filename=None, ori_filename=None, img=img,
                    img_shape=img.shape, ori_shape=img.shape, img_fields=["img"])

    def _load_as_array(self, image: np.ndarray) -> dict:
        return self.load_array(dict(img=image, ann_info=None, bbox_fields=[],
                                    img_info=dict(width=image.shape[1], height=image.shape[0])))

    def batch_key(self, data: dict, idx: int) -> tuple:
        """Prepared images with equal keys may share a forward pass: same tensor shapes,
        one view each; ``idx`` (the image's place in its batch) keeps the others apart.

        Padding different shapes to a common one would change results (CRNN's BiLSTM reads
        the padded columns; a detector's features near the edge see them), so it is not done.
        """
        imgs = data["img"] if isinstance(data["img"], list) else [data["img"]]
        if not self.batches or len(imgs) > 1:  # an augmented test (e.g. a rotated tall crop)
            return ("alone", idx)
        return tuple(tuple(img.data.shape) for img in imgs)

    def collate(self, datas: List[dict]) -> dict:
        """Prepared images as one batch, collated as mmdet does, on the model's device."""
        from mmcv.parallel import collate, scatter

        data = collate(datas, samples_per_gpu=len(datas))
        if isinstance(data["img_metas"], list):
            data["img_metas"] = [metas.data[0] for metas in data["img_metas"]]
        else:
            data["img_metas"] = data["img_metas"].data
        if isinstance(data["img"], list):
            data["img"] = [img.data for img in data["img"]]
            if isinstance(data["img"][0], list):
                data["img"] = [img[0] for img in data["img"]]
        else:
            data["img"] = data["img"].data
        if self.task == RECOG and isinstance(data["img"], list) and len(data["img"]) == 1:
            # One view: a plain test, which (unlike an augmented one) takes a batch.
            data["img"], data["img_metas"] = data["img"][0], data["img_metas"][0]
        if self.device.type == "cuda":
            data = scatter(data, [self.device])[0]
        return data

    def network_input(self, datas: List[dict]):
        """The batch of prepared images as the backbone takes it: one test view."""
        return _only_view(self.collate(datas)["img"])

    def forward(self, datas: List[dict]) -> List[dict]:
        """One forward pass over prepared images of one ``batch_key``.

        Returns:
            The model's own result dict for each image, in order.

        Raises:
            Exception: whatever the model raises, or a RuntimeError where it gives a
                result count other than the image count.
        """
        import torch

        data = self.collate(datas)
        batched_test = BATCHED_TESTS.get(self.architecture) if len(datas) > 1 else None
        with torch.no_grad():
            if self.network is not None and not isinstance(data["img"], list):
                scores = self.network(data["img"])  # an augmented test stays in torch
                raws = results_from_scores(self.model, data["img"], scores, data["img_metas"])
            elif batched_test is not None:
                raws = batched_test(self.model, _only_view(data["img"]),
                                    _only_view(data["img_metas"]))
            else:
                raws = self.model(return_loss=False, rescale=True, **data)
        if len(raws) != len(datas):
            raise RuntimeError(f"{self.architecture} gave {len(raws)} results for "
                               f"{len(datas)} images")
        return raws

    def typed(self, raw: dict) -> Union[DetectionResult, Recognition]:
        """The model's own result dict as a typed result."""
        return DetectionResult.from_mmocr(raw) if self.task == DET else Recognition.from_mmocr(raw)


def _only_view(value):
    """The single test-time view of a detector's input (MultiScaleFlipAug gives a list)."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value
