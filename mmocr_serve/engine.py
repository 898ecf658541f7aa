"""The inference engine: decoded images in, typed results out.

It knows nothing of TorchServe, HTTP or AIGES; every front end calls ``OCREngine``.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .decode import DEFAULT_MAX_PIXELS, decode_image, split_request
from .errors import ConversionError, InferenceError, ModelLoadError, ServeError, UnprocessableImage
from .loading import ModelDirManifest, load_model
from .onnx_backend import OnnxNetwork, results_from_scores
from .options import NO_OPTIONS, RequestOptions, parse_options
from .results import DetectionResult, OCRItem, OCRResult, Recognition, readtext_score
from .runtime import RuntimeOptions
from .tasks import DET, OCR, RECOG

logger = logging.getLogger(__name__)

Result = Union[DetectionResult, Recognition, OCRResult]

# Architectures whose test forward cannot take more than one image, with the reason.
UNBATCHABLE = {
    "DRRG": "its head builds a graph of text components from one image's maps inside the "
            "forward pass (DRRGHead.single_test), so a forward pass holds one image",
}


@dataclass
class Stats:
    """What requests cost, by stage, and what the models ran; filled in by the engine
    (``predict_payloads``) for the front end to report (the handler's metrics)."""

    decode_ms: float = 0.0
    preprocess_ms: float = 0.0  # the models' test pipelines
    forward_ms: float = 0.0  # the models' test forward, MMOCR's own decoding included
    postprocess_ms: float = 0.0  # typed results, filters, end-to-end crops
    passes: int = 0
    pass_images: int = 0  # images in all forward passes
    results: int = 0  # images answered with a result
    boxes: int = 0  # boxes (or text regions) in those results
    errors: Counter = field(default_factory=Counter)  # error kind -> requests

    def add(self, other: "Stats") -> None:
        for name in (f.name for f in fields(self) if f.name != "errors"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)  # Counter.update adds


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

    def __init__(self, model, max_batch: int = 1):
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
        self.max_batch = max(1, int(max_batch))
        self.channels_last = False  # see ``use_channels_last``
        self.network = None  # a recognizer's onnx_backend.OnnxNetwork, where it has one
        self.architecture = type(model).__name__
        self.batches = self.architecture not in UNBATCHABLE
        if not self.batches:
            logger.warning("mmocr-serve: %s runs one image per forward pass: %s",
                           self.architecture, UNBATCHABLE[self.architecture])

    def use_channels_last(self) -> bool:
        """Store a detector's 4-D weights channels-last (NHWC), the layout oneDNN's CPU
        convolutions run fastest on large feature maps (recognizers, with small inputs,
        gain nothing and stay contiguous).

        Returns:
            Whether the layout changed. It stays contiguous (logged) where the model has
            mmcv's compiled ops, which index their inputs as contiguous NCHW, or where a
            pass in the new layout fails.
        """
        import torch

        if self.task != DET:
            return False
        ops = sorted({type(module).__name__ for module in self.model.modules()
                      if type(module).__module__.startswith("mmcv.ops")})
        if ops:
            logger.warning("mmocr-serve: %s keeps contiguous weights: mmcv ops (%s) read "
                           "their inputs as NCHW", self.architecture, ", ".join(ops))
            return False
        self.model.to(memory_format=torch.channels_last)
        try:
            self._network_pass()
        except Exception as err:
            self.model.to(memory_format=torch.contiguous_format)
            logger.warning("mmocr-serve: %s keeps contiguous weights: a channels-last pass "
                           "failed: %s: %s", self.architecture, type(err).__name__, err)
            return False
        self.channels_last = True
        return True

    def _network_pass(self, data: Optional[dict] = None):
        """A prepared image (default: the check image) through the backbone, neck and
        (where its forward takes the features alone) the head; not the post-processing,
        which random or untrained maps can keep busy for minutes (DRRG, TextSnake).

        Returns:
            The backbone and neck's features.
        """
        import inspect

        import torch

        img = _only_view(self._collate([data or self._check_data()])["img"])
        with torch.no_grad():
            features = self.model.extract_feat(img)
            head = getattr(self.model, "bbox_head", None)
            if head is not None and len(inspect.signature(head.forward).parameters) == 1:
                head(features)
        return features

    def _check_data(self) -> dict:
        """A plain preprocessed image for measuring and checking passes."""
        size = (640, 360) if self.task == DET else (128, 32)
        image = np.full((size[1], size[0], 3), 200, np.uint8)
        if self.image_flag.startswith("grayscale"):
            image = image[:, :, 0]
        return self._pipeline(image, from_array=False)

    def predict(self, image: np.ndarray, from_array: bool = False) -> Result:
        """Run one decoded image through the pipeline and the model.

        ``from_array`` feeds the image as ``model_inference`` feeds an ndarray
        (``LoadImageFromNdarray``), which is how ``readtext`` feeds crops.

        Raises:
            UnprocessableImage: the model's preprocessing rejects the image.
            InferenceError: the model failed on it.
        """
        return self.typed(self.predict_raw(image, from_array))

    def predict_batch(self, images: Sequence[np.ndarray], from_array: bool = False,
                      stats: Optional[Stats] = None) -> List[Union[Result, ServeError]]:
        """Typed results for many images, in batched forward passes (see ``forward_batch``)."""
        return [raw if isinstance(raw, ServeError) else self.typed(raw)
                for raw in self.forward_batch(images, from_array, stats)]

    def typed(self, raw: dict) -> Result:
        return DetectionResult.from_mmocr(raw) if self.task == DET else Recognition.from_mmocr(raw)

    def predict_raw(self, image: np.ndarray, from_array: bool = False) -> dict:
        """The model's own result dict for one image."""
        return _result_or_raise(self.forward_batch([image], from_array)[0])

    def forward_batch(self, images: Sequence[np.ndarray], from_array: bool = False,
                      stats: Optional[Stats] = None) -> List[Union[dict, ServeError]]:
        """The model's own result dict for each image, or the error of that image alone.

        Images whose preprocessed tensors have the same shape run in forward passes of up
        to ``max_batch`` images, in order; a model in ``UNBATCHABLE`` runs one per pass.
        """
        stats = stats if stats is not None else Stats()
        out: List[Any] = [None] * len(images)
        prepared, groups = {}, {}
        began = time.perf_counter()
        for idx, image in enumerate(images):
            try:
                prepared[idx] = self._pipeline(image, from_array)
            except UnprocessableImage as err:
                out[idx] = err
                continue
            groups.setdefault(self._batch_key(prepared[idx], idx), []).append(idx)
        stats.preprocess_ms += (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        for members in groups.values():
            for start in range(0, len(members), self.max_batch):
                self._forward_group(members[start:start + self.max_batch], prepared, out, stats)
        stats.forward_ms += (time.perf_counter() - began) * 1000
        return out

    def _pipeline(self, image: np.ndarray, from_array: bool) -> dict:
        prepare = self._prepare_array if from_array else self._prepare
        try:
            return self.transforms(prepare(image))
        except Exception as err:  # the input, not the server, is at fault
            raise UnprocessableImage(
                f"the model's preprocessing cannot take this {image.shape[1]}x{image.shape[0]} "
                f"image: {type(err).__name__}: {str(err).strip().splitlines()[-1]}") from None

    def _batch_key(self, data: dict, idx: int) -> tuple:
        """Images with equal keys share a forward pass: same tensor shapes, one view each.

        Padding different shapes to a common one would change results (CRNN's BiLSTM reads
        the padded columns; a detector's features near the edge see them), so it is not done.
        """
        imgs = data["img"] if isinstance(data["img"], list) else [data["img"]]
        if not self.batches or len(imgs) > 1:  # an augmented test (e.g. a rotated tall crop)
            return ("alone", idx)
        return tuple(tuple(img.data.shape) for img in imgs)

    def _forward_group(self, members: List[int], prepared: dict, out: list,
                       stats: Stats) -> None:
        try:
            stats.passes += 1
            stats.pass_images += len(members)
            raws = self._forward([prepared[idx] for idx in members])
            if len(raws) != len(members):
                raise RuntimeError(f"{self.architecture} gave {len(raws)} results for "
                                   f"{len(members)} images")
        except Exception as err:
            if len(members) > 1:  # find the image at fault; the others still get results
                for idx in members:
                    self._forward_group([idx], prepared, out, stats)
                return
            logger.exception("inference failed on image %d of a batch", members[0])
            out[members[0]] = InferenceError(f"inference failed: {type(err).__name__}: {err}")
            return
        for idx, raw in zip(members, raws):
            out[idx] = raw

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
        """One forward pass over prepared images of one shape, collated as mmdet does."""
        import torch

        data = self._collate(datas)
        batched_test = BATCHED_TESTS.get(self.architecture) if len(datas) > 1 else None
        with torch.no_grad():
            if self.network is not None and not isinstance(data["img"], list):
                scores = self.network(data["img"])  # an augmented test stays in torch
                return results_from_scores(self.model, data["img"], scores, data["img_metas"])
            if batched_test is not None:
                return batched_test(self.model, _only_view(data["img"]),
                                    _only_view(data["img_metas"]))
            return self.model(return_loss=False, rescale=True, **data)

    def _collate(self, datas: List[dict]) -> dict:
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


class OCREngine:
    """A detector, a recognizer, or both (end-to-end OCR) behind one ``predict``.

    ``predict_payloads`` never fails a whole batch: each request gets its result or error.
    """

    def __init__(self, detector: Optional[ModelRunner] = None,
                 recognizer: Optional[ModelRunner] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        if detector is None and recognizer is None:
            raise ValueError("give a detector, a recognizer, or both")
        self.detector, self.recognizer = detector, recognizer
        self.task = OCR if detector and recognizer else (detector or recognizer).task
        self.max_pixels = max_pixels

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
            UnprocessableImage: the model's preprocessing rejects the image.
            InferenceError: a model failed on this image.
        """
        return _result_or_raise(self.predict_many([image], [options])[0])

    def predict_many(self, images: Sequence[np.ndarray], options: Sequence[RequestOptions],
                     stats: Optional[Stats] = None) -> List[Union[Result, ServeError]]:
        """Decoded images -> one result or error each, the models run in batched passes."""
        if self.task == OCR:
            return self._read_texts(images, options, stats)
        runner = self.detector or self.recognizer
        outcomes = runner.predict_batch(images, stats=stats)
        if self.detector:
            outcomes = [out if isinstance(out, ServeError) else out.select(opt.score_thr, opt.order)
                        for out, opt in zip(outcomes, options)]
        return outcomes

    def _read_texts(self, images: Sequence[np.ndarray], options: Sequence[RequestOptions],
                    stats: Optional[Stats]) -> List[Union[OCRResult, ServeError]]:
        """Detect, crop and recognise as MMOCR 0.6.3's ``readtext`` does, with the crops of
        every image in the batch recognised together."""
        from mmocr.datasets.pipelines.crop import crop_img

        detections = self.detector.predict_batch(images, from_array=True, stats=stats)
        regions, crops = [], []  # regions[i]: image i's (instance, crop number) list, or its error
        for image, detected, opt in zip(images, detections, options):
            if isinstance(detected, ServeError):
                regions.append(detected)
                continue
            regions.append([])
            for inst in detected.select(opt.score_thr, opt.order).instances:
                regions[-1].append((inst, len(crops)))
                crops.append(crop_img(image, readtext_crop_box(inst.polygon)))
        texts = self.recognizer.forward_batch(crops, from_array=True, stats=stats)
        return [found if isinstance(found, ServeError) else self._ocr_result(found, texts)
                for found in regions]

    @staticmethod
    def _ocr_result(found: list, texts: list) -> Union[OCRResult, ServeError]:
        items = []
        for inst, crop_no in found:
            raw = texts[crop_no]
            if isinstance(raw, ServeError):  # readtext itself would fail on this image
                return type(raw)(f"text region {len(items)} {inst.to_list()[:-1]}: {raw.message}")
            items.append(OCRItem(box=[round(v) for v in inst.polygon], box_score=inst.score,
                                 text=str(raw["text"]), text_score=readtext_score(raw)))
        return OCRResult(items)

    def predict_payloads(self, payloads: Sequence[Any],
                         stats: Optional[Stats] = None) -> List[Union[Result, ServeError]]:
        """Decode and predict each request row; a failure fills its own slot only.

        Returns:
            One entry per payload, in order: a result, or the ``ServeError`` it raised.
        """
        stats = stats if stats is not None else Stats()
        out: List[Any] = [None] * len(payloads)
        accepted = []  # (slot, image, options) of the rows that decoded
        began = time.perf_counter()
        for slot, payload in enumerate(payloads):
            try:
                image_payload, raw_options = split_request(payload)
                image = self.decode(image_payload)  # a missing image is named before options
                accepted.append((slot, image, parse_options(raw_options, self.accepts_options)))
            except ServeError as err:
                out[slot] = err
        stats.decode_ms += (time.perf_counter() - began) * 1000
        if accepted:
            began, inside = time.perf_counter(), stats.preprocess_ms + stats.forward_ms
            slots, images, options = zip(*accepted)
            for slot, outcome in zip(slots, self._predict_isolated(images, options, stats)):
                out[slot] = outcome
            stats.postprocess_ms += ((time.perf_counter() - began) * 1000
                                     - (stats.preprocess_ms + stats.forward_ms - inside))
        for outcome in out:
            if isinstance(outcome, ServeError):
                stats.errors[outcome.kind] += 1
            else:
                stats.results += 1
                stats.boxes += (len(outcome.instances) if isinstance(outcome, DetectionResult)
                                else len(outcome.items) if isinstance(outcome, OCRResult) else 0)
        return out

    def _predict_isolated(self, images, options, stats: Stats) -> list:
        """``predict_many``; should it fail as a whole, each image is retried on its own."""
        try:
            return self.predict_many(images, options, stats)
        except Exception as err:
            if len(images) > 1:
                return [self._predict_isolated([image], [opt], stats)[0]
                        for image, opt in zip(images, options)]
            logger.exception("inference failed on a %s image", getattr(images[0], "shape", "?"))
            return [InferenceError(f"inference failed: {type(err).__name__}: {err}")]


def load_engine(model_dir: Union[str, Path], device: str = "cpu",
                options: Optional[RuntimeOptions] = None) -> OCREngine:
    """Build the inference engine from a model directory (an unpacked .mar).

    Raises:
        ModelLoadError: the directory, its manifest or a model in it is unusable.
    """
    model_dir = Path(model_dir)
    manifest = ModelDirManifest.read(model_dir)
    models = {role: (model_dir / files.config, model_dir / files.checkpoint,
                     {key: str(model_dir / rel) for key, rel in files.files.items()})
              for role, files in manifest.models.items()}
    networks = {role: model_dir / files.network for role, files in manifest.models.items()
                if files.network}
    return engine_from_models(models, device, options, networks=networks)


def engine_from_models(models: Dict[str, tuple], device: str = "cpu",
                       options: Optional[RuntimeOptions] = None, trust: bool = False,
                       networks: Optional[Dict[str, Path]] = None) -> OCREngine:
    """Build the engine from ``{"det"|"recog": (config, checkpoint[, cfg_options])}``;
    ``networks`` names a role's exported ONNX network, which CPU workers run.

    Raises:
        ModelLoadError: a model cannot be built or loaded, or is not of its role.
    """
    options = options or RuntimeOptions()
    runners = {}
    for role, (config, checkpoint, *rest) in models.items():
        try:
            model = load_model(config, checkpoint, device=device,
                               cfg_options=rest[0] if rest else None, trust=trust)
        except ConversionError as err:
            raise ModelLoadError(f"cannot load the {role} model: {err.message}") from None
        crops = role == RECOG and len(models) == 2  # a page's text regions, any number
        runners[role] = ModelRunner(model, max_batch=options.forward_batch(device, crops))
        if runners[role].task != role:
            raise ModelLoadError(f"{config} is a {runners[role].task} model, given as {role}")
        if device == "cpu" and options.cpu_layout == "channels_last":
            runners[role].use_channels_last()
        if role in (networks or {}):
            runners[role].network = onnx_network(networks[role], device)
    return OCREngine(detector=runners.get(DET), recognizer=runners.get(RECOG),
                     max_pixels=options.max_image_pixels)


def onnx_network(path: Path, device: str):
    """The exported network in ONNX Runtime on a CPU worker; None on a GPU, where the
    network runs in torch (the onnxruntime package runs on CPUs only).

    Raises:
        ModelLoadError: ONNX Runtime cannot load the network.
    """
    import torch

    if device != "cpu":
        logger.info("mmocr-serve: %s: the recognizer runs in torch on %s", path.name, device)
        return None
    try:
        return OnnxNetwork(path, threads=torch.get_num_threads())
    except Exception as err:
        raise ModelLoadError(f"ONNX Runtime cannot load {path}: {type(err).__name__}: {err}"
                             ) from None


def _result_or_raise(outcome):
    if isinstance(outcome, ServeError):
        raise outcome
    return outcome


def _only_view(value):
    """The single test-time view of a detector's input (MultiScaleFlipAug gives a list)."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def readtext_crop_box(polygon: List[float]) -> List[float]:
    """The quadrilateral ``readtext`` crops: the polygon's own four corners, or, for a
    polygon of more than four points, its axis-aligned bounding rectangle."""
    if len(polygon) <= 8:
        return list(polygon[:8])
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), max(xs), min(ys), max(xs), max(ys), min(xs), max(ys)]
