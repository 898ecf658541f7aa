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
from .errors import InferenceError, ServeError, UnprocessableImage
from .loading import DET, OCR, RECOG
from .options import NO_OPTIONS, RequestOptions, parse_options, split_request
from .results import DetectionResult, OCRItem, OCRResult, Recognition, readtext_score

logger = logging.getLogger(__name__)

Result = Union[DetectionResult, Recognition, OCRResult]


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


class ModelRunner:
    """One MMOCR detector or recognizer with its test pipeline.

    Images go in already decoded with the flag of the model's own loading step
    (``image_flag``), so a result equals ``model_inference`` on the same image file.
    """

    def __init__(self, model):
        from mmdet.datasets import replace_ImageToTensor
        from mmdet.datasets.pipelines import Compose

        from mmocr.datasets.pipelines import LoadImageFromNdarray
        from mmocr.models.textdet.detectors import TextDetectorMixin

        self.model = model
        self.task = DET if isinstance(model, TextDetectorMixin) else RECOG
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

    def predict(self, image: np.ndarray, from_array: bool = False) -> Result:
        """Run one decoded image through the pipeline and the model.

        ``from_array`` feeds the image as ``model_inference`` feeds an ndarray
        (``LoadImageFromNdarray``), which is how ``readtext`` feeds crops.
        """
        raw = self.predict_raw(image, from_array)
        if self.task == DET:
            return DetectionResult.from_mmocr(raw)
        return Recognition.from_mmocr(raw)

    def predict_raw(self, image: np.ndarray, from_array: bool = False) -> dict:
        """The model's own result dict for one image."""
        prepare = self._prepare_array if from_array else self._prepare
        try:
            data = self.transforms(prepare(image))
        except Exception as err:  # the input, not the server, is at fault
            raise UnprocessableImage(
                f"the model's preprocessing cannot take this {image.shape[1]}x{image.shape[0]} "
                f"image: {type(err).__name__}: {str(err).strip().splitlines()[-1]}") from None
        return self._forward([data])[0]

    def _prepare(self, image: np.ndarray) -> dict:
        # The fields LoadImageFromFile sets, without a file.
        img = image.astype(np.float32) if self.to_float32 else image
        return dict(img_info=dict(width=img.shape[1], height=img.shape[0]), img_prefix=None,
                    ann_info=None, bbox_fields=[], filename=None, ori_filename=None, img=img,
                    img_shape=img.shape, ori_shape=img.shape, img_fields=["img"])

    def _prepare_array(self, image: np.ndarray) -> dict:
        return self.load_array(dict(img=image, ann_info=None, bbox_fields=[],
                         img_info=dict(width=image.shape[1], height=image.shape[0])))

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
    """A detector, a recognizer, or both (end-to-end OCR) behind one ``predict``.

    ``predict_payloads`` never fails a whole batch: each request gets its result or error.
    """

    def __init__(self, detector: Optional[ModelRunner] = None,
                 recognizer: Optional[ModelRunner] = None, options: Optional[dict] = None):
        if detector is None and recognizer is None:
            raise ValueError("give a detector, a recognizer, or both")
        self.detector, self.recognizer = detector, recognizer
        self.task = OCR if detector and recognizer else (detector or recognizer).task
        self.options = dict(options or {})
        self.max_pixels = int(self.options.get("max_image_pixels", DEFAULT_MAX_PIXELS))

    @property
    def accepts_options(self) -> bool:
        return self.detector is not None

    def decode(self, payload: Any) -> np.ndarray:
        """Decode one request payload the way in-process MMOCR reads the image file.

        A single model reads it with its own loading step's flag; end-to-end OCR reads it
        as ``readtext`` does (``mmcv.imread``: colour, EXIF orientation applied).
        """
        runner = self.detector or self.recognizer
        flag = "color" if self.task == OCR else runner.image_flag
        return decode_image(payload, flag=flag, channel_order=runner.channel_order,
                            max_pixels=self.max_pixels)

    def predict(self, image: np.ndarray, options: RequestOptions = NO_OPTIONS) -> Result:
        """One image -> its result.

        Raises:
            InferenceError: a model failed on this image.
        """
        try:
            if self.task == OCR:
                return self._read_text(image, options)
            if self.detector:
                return self.detector.predict(image).select(options.score_thr, options.order)
            return self.recognizer.predict(image)
        except ServeError:
            raise
        except Exception as err:
            logger.exception("inference failed on a %s image", getattr(image, "shape", "?"))
            raise InferenceError(f"inference failed: {type(err).__name__}: {err}") from None

    def _read_text(self, image: np.ndarray, options: RequestOptions) -> OCRResult:
        """Detect, crop and recognise as MMOCR 0.6.3's ``readtext`` does (batch_mode off)."""
        from mmocr.datasets.pipelines.crop import crop_img

        detected = self.detector.predict(image, from_array=True)
        items = []
        for inst in detected.select(options.score_thr, options.order).instances:
            crop = crop_img(image, readtext_crop_box(inst.polygon))
            raw = self.recognizer.predict_raw(crop, from_array=True)
            items.append(OCRItem(box=[round(v) for v in inst.polygon], box_score=inst.score,
                                 text=str(raw["text"]), text_score=readtext_score(raw)))
        return OCRResult(items)

    def predict_payloads(self, payloads: Sequence[Any]) -> List[Union[Result, ServeError]]:
        """Decode and predict each request row; a failure fills its own slot only.

        Returns:
            One entry per payload, in order: a result, or the ``ServeError`` it raised.
        """
        out: List[Union[Result, ServeError]] = []
        for payload in payloads:
            try:
                image_payload, raw_options = split_request(payload)
                image = self.decode(image_payload)  # a missing image is named before options
                out.append(self.predict(image, parse_options(raw_options, self.accepts_options)))
            except ServeError as err:
                out.append(err)
        return out


def readtext_crop_box(polygon: List[float]) -> List[float]:
    """The quadrilateral ``readtext`` crops: the polygon's own four corners, or, for a
    polygon of more than four points, its axis-aligned bounding rectangle."""
    if len(polygon) <= 8:
        return list(polygon[:8])
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), max(xs), min(ys), max(xs), max(ys), min(xs), max(ys)]
