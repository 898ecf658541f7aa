"""The inference engine: decoded images in, typed results out.

It knows nothing of TorchServe, HTTP or AIGES; every front end calls ``OCREngine``.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from .decode import DEFAULT_MAX_PIXELS, decode_image
from .errors import InferenceError, ServeError
from .results import DetectionResult, Recognition

logger = logging.getLogger(__name__)

Result = Union[DetectionResult, Recognition]


def test_pipeline(cfg) -> list:
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


class ModelRunner:
    """One MMOCR detector or recognizer with its test pipeline.

    Images go in already decoded with the flag of the model's own loading step
    (``image_flag``), so a result equals ``model_inference`` on the same image file.
    """

    def __init__(self, model):
        from mmdet.datasets import replace_ImageToTensor
        from mmdet.datasets.pipelines import Compose

        from .loading import DET, RECOG
        from mmocr.models.textdet.detectors import TextDetectorMixin

        self.model = model
        self.task = DET if isinstance(model, TextDetectorMixin) else RECOG
        steps = test_pipeline(model.cfg)
        load = steps[0]
        self.image_flag = load.get("color_type", "color")
        self.channel_order = load.get("channel_order", "bgr")
        self.to_float32 = bool(load.get("to_float32", False))
        with warnings.catch_warnings():  # it warns that it replaces ImageToTensor; intended
            warnings.simplefilter("ignore", UserWarning)
            self.transforms = Compose(replace_ImageToTensor(steps[1:]))
        self.device = next(model.parameters()).device

    def predict(self, image: np.ndarray) -> Result:
        """Run one decoded image through the pipeline and the model."""
        raw = self._forward([self._prepare(image)])[0]
        if self.task == "det":
            return DetectionResult.from_mmocr(raw)
        return Recognition.from_mmocr(raw)

    def _prepare(self, image: np.ndarray) -> dict:
        # The fields LoadImageFromFile sets, without a file.
        img = image.astype(np.float32) if self.to_float32 else image
        data = dict(img_info=dict(width=img.shape[1], height=img.shape[0]), img_prefix=None,
                    ann_info=None, bbox_fields=[], filename=None, ori_filename=None, img=img,
                    img_shape=img.shape, ori_shape=img.shape, img_fields=["img"])
        return self.transforms(data)

    def _forward(self, datas: List[dict]) -> list:
        import torch
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
        if self.device.type == "cuda":
            data = scatter(data, [self.device])[0]
        with torch.no_grad():
            return self.model(return_loss=False, rescale=True, **data)


class OCREngine:
    """A detector or a recognizer behind one ``predict`` that never fails a whole batch."""

    def __init__(self, detector: Optional[ModelRunner] = None,
                 recognizer: Optional[ModelRunner] = None, options: Optional[dict] = None):
        if (detector is None) == (recognizer is None):
            raise ValueError("give exactly one of detector and recognizer")
        self.runner = detector or recognizer
        self.task = self.runner.task
        self.options = dict(options or {})
        self.max_pixels = int(self.options.get("max_image_pixels", DEFAULT_MAX_PIXELS))

    def decode(self, payload: Any) -> np.ndarray:
        """Decode one request payload the way this engine's model reads image files."""
        return decode_image(payload, flag=self.runner.image_flag,
                            channel_order=self.runner.channel_order,
                            max_pixels=self.max_pixels)

    def predict(self, image: np.ndarray) -> Result:
        """One image -> its result.

        Raises:
            InferenceError: the model failed on this image.
        """
        try:
            return self.runner.predict(image)
        except ServeError:
            raise
        except Exception as err:
            logger.exception("inference failed on a %s image", getattr(image, "shape", "?"))
            raise InferenceError(f"inference failed: {type(err).__name__}: {err}") from None

    def predict_payloads(self, payloads: Sequence[Any]) -> List[Union[Result, ServeError]]:
        """Decode and predict each payload; a failure fills its own slot only.

        Returns:
            One entry per payload, in order: a result, or the ``ServeError`` it raised.
        """
        out: List[Union[Result, ServeError]] = []
        for payload in payloads:
            try:
                out.append(self.predict(self.decode(payload)))
            except ServeError as err:
                out.append(err)
        return out
