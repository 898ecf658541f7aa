"""The inference engine: decoded images in, typed results out.

It knows nothing of TorchServe, HTTP or AIGES; every front end calls
``OCREngine.predict_payloads``. Each model is an ``adapter.ModelAdapter``, run in the
batched passes of ``passes.run_in_passes``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .adapter import ModelAdapter
from .decode import DEFAULT_MAX_PIXELS, decode_image, split_request
from .errors import ConversionError, ModelLoadError, ServeError
from .loading import ModelDirManifest, load_model
from .onnx_backend import OnnxNetwork
from .options import NO_OPTIONS, RequestOptions, parse_options
from .passes import Stats, isolated, run_in_passes
from .results import DetectionResult, OCRItem, OCRResult, Recognition, readtext_score
from .runtime import RuntimeOptions, use_bfloat16, use_channels_last
from .tasks import DET, OCR, RECOG

logger = logging.getLogger(__name__)

Result = Union[DetectionResult, Recognition, OCRResult]


class OCREngine:
    """A detector, a recognizer, or both (end-to-end OCR) behind one ``predict_payloads``.

    ``predict_payloads`` never fails a whole batch: each request gets its result or error.
    """

    def __init__(self, detector: Optional[ModelAdapter] = None,
                 recognizer: Optional[ModelAdapter] = None,
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
        adapter = self.detector or self.recognizer
        flag = "color" if self.task == OCR else adapter.image_flag
        return decode_image(payload, flag=flag, channel_order=adapter.channel_order,
                            max_pixels=self.max_pixels)

    def predict_payloads(self, payloads: Sequence[Any],
                         stats: Optional[Stats] = None) -> List[Union[Result, ServeError]]:
        """Decode and predict each request row; a failure fills its own slot only.

        Returns:
            One entry per payload, in order: a result, or the ``ServeError`` it raised.
        """
        stats = stats if stats is not None else Stats()
        out, accepted = self._decode_rows(payloads, stats)
        if accepted:
            self._predict_rows(accepted, out, stats)
        _count_outcomes(out, stats)
        return out

    def _decode_rows(self, payloads: Sequence[Any], stats: Stats) -> Tuple[list, list]:
        """Each row's image and options, or its error in the returned slots.

        Returns:
            The slots (an error, or None to fill) and the (slot, image, options) of the
            rows that decoded.
        """
        out: List[Any] = [None] * len(payloads)
        accepted = []
        began = time.perf_counter()
        for slot, payload in enumerate(payloads):
            try:
                image_payload, raw_options = split_request(payload)
                image = self.decode(image_payload)  # a missing image is named before options
                accepted.append((slot, image, parse_options(raw_options, self.accepts_options)))
            except ServeError as err:
                out[slot] = err
        stats.decode_ms += (time.perf_counter() - began) * 1000
        return out, accepted

    def _predict_rows(self, accepted: list, out: list, stats: Stats) -> None:
        """Fill the slots of the decoded rows, each ``(slot, image, options)``.

        The passes isolate a failing forward themselves; a failure outside them
        (post-processing, say) would fail every row, so the rows are then retried one at a
        time. The time outside the models' passes is post-processing.
        """
        def predict(rows: list) -> list:
            return self.predict_many([image for _, image, _ in rows],
                                     [opt for _, _, opt in rows], stats)

        began, inside = time.perf_counter(), stats.preprocess_ms + stats.forward_ms
        outcomes = isolated(predict, accepted,
                            lambda row: f"a {getattr(row[1], 'shape', '?')} image")
        for (slot, _, _), outcome in zip(accepted, outcomes):
            out[slot] = outcome
        stats.postprocess_ms += ((time.perf_counter() - began) * 1000
                                 - (stats.preprocess_ms + stats.forward_ms - inside))

    def predict_many(self, images: Sequence[np.ndarray],
                     options: Optional[Sequence[RequestOptions]] = None,
                     stats: Optional[Stats] = None) -> List[Union[Result, ServeError]]:
        """Decoded images -> one result or error each, the models run in batched passes.

        ``options``: one per image; default: none (``NO_OPTIONS``) for every image.
        """
        options = options if options is not None else [NO_OPTIONS] * len(images)
        stats = stats if stats is not None else Stats()
        if self.task == OCR:
            return self._read_texts(images, options, stats)
        adapter = self.detector or self.recognizer
        outcomes = _typed(adapter, _model_outcomes(adapter, images, False, stats))
        if self.detector:
            outcomes = [out if isinstance(out, ServeError) else out.select(opt.score_thr, opt.order)
                        for out, opt in zip(outcomes, options)]
        return outcomes

    def _read_texts(self, images: Sequence[np.ndarray], options: Sequence[RequestOptions],
                    stats: Stats) -> List[Union[OCRResult, ServeError]]:
        """Detect, crop and recognise as MMOCR 0.6.3's ``readtext`` does, with the crops of
        every image in the batch recognised together."""
        from mmocr.datasets.pipelines.crop import crop_img

        detections = _typed(self.detector, _model_outcomes(self.detector, images, True, stats))
        regions, crops = [], []  # regions[i]: image i's (instance, crop number) list, or its error
        for image, detected, opt in zip(images, detections, options):
            if isinstance(detected, ServeError):
                regions.append(detected)
                continue
            regions.append([])
            for inst in detected.select(opt.score_thr, opt.order).instances:
                regions[-1].append((inst, len(crops)))
                crops.append(crop_img(image, readtext_crop_box(inst.polygon)))
        texts = _model_outcomes(self.recognizer, crops, True, stats)
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


def _model_outcomes(adapter: ModelAdapter, images: Sequence[np.ndarray], from_array: bool,
                    stats: Stats) -> List[Union[dict, ServeError]]:
    """The model's own result dict for each image, or that image's error, in passes of
    up to ``max_batch`` images of one ``batch_key``.

    ``from_array`` feeds the images as ``readtext`` feeds them (``ModelAdapter.prepare``).
    """
    return run_in_passes(images, lambda image: adapter.prepare(image, from_array),
                         adapter.batch_key, adapter.forward, adapter.max_batch, stats)


def _typed(adapter: ModelAdapter, outcomes: list) -> List[Union[Result, ServeError]]:
    return [out if isinstance(out, ServeError) else adapter.typed(out) for out in outcomes]


def _count_outcomes(out: list, stats: Stats) -> None:
    """Results, their boxes (or text regions), and errors by kind."""
    for outcome in out:
        if isinstance(outcome, ServeError):
            stats.errors[outcome.kind] += 1
        else:
            stats.results += 1
            stats.boxes += (len(outcome.instances) if isinstance(outcome, DetectionResult)
                            else len(outcome.items) if isinstance(outcome, OCRResult) else 0)


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
    networks = networks or {}
    adapters = {}
    for role, (config, checkpoint, *rest) in models.items():
        crops = role == RECOG and len(models) == 2  # a page's text regions, any number
        adapters[role] = _load_adapter(role, config, checkpoint, rest[0] if rest else None,
                                       trust, device, options.forward_batch(device, crops))
        if device == "cpu" and options.cpu_layout == "channels_last":
            use_channels_last(adapters[role])
        if role in networks:
            adapters[role].network = onnx_network(networks[role], device)
        if device == "cpu" and options.cpu_precision == "bf16":
            use_bfloat16(adapters[role])
    return OCREngine(detector=adapters.get(DET), recognizer=adapters.get(RECOG),
                     max_pixels=options.max_image_pixels)


def _load_adapter(role: str, config, checkpoint, cfg_options: Optional[dict], trust: bool,
                  device: str, max_batch: int) -> ModelAdapter:
    """One role's model, loaded and adapted.

    Raises:
        ModelLoadError: the model cannot be built or loaded, or is not of its role.
    """
    try:
        model = load_model(config, checkpoint, device=device, cfg_options=cfg_options,
                           trust=trust)
        adapter = ModelAdapter(model, max_batch=max_batch)
    except ConversionError as err:
        raise ModelLoadError(f"cannot load the {role} model: {err.message}") from None
    if adapter.task != role:
        raise ModelLoadError(f"{config} is a {adapter.task} model, given as {role}")
    return adapter


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


def readtext_crop_box(polygon: List[float]) -> List[float]:
    """The quadrilateral ``readtext`` crops: the polygon's own four corners, or, for a
    polygon of more than four points, its axis-aligned bounding rectangle."""
    if len(polygon) <= 8:
        return list(polygon[:8])
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), max(xs), min(ys), max(xs), max(ys), min(xs), max(ys)]
