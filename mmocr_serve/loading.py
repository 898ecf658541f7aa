"""The only code that reads MMOCR configs and checkpoints and builds models from them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import ConversionError, ModelLoadError, UntrustedCheckpoint, check_choice

DET, RECOG, OCR = "det", "recog", "ocr"  # OCR: a detector and a recognizer
MANIFEST_NAME = "mmocr-serve.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ModelFiles:
    """Where one model's files lie inside a model directory (paths relative to it)."""

    config: str
    checkpoint: str
    # config key (dotted) -> packed file, re-pointed at load time
    files: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelDirManifest:
    """``mmocr-serve.json``: what a model directory (an unpacked .mar) holds."""

    task: str
    models: Dict[str, ModelFiles]
    options: Dict[str, object] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "task": self.task,
                "models": {k: vars(v) for k, v in self.models.items()},
                "options": self.options,
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def read(cls, model_dir: str | os.PathLike) -> "ModelDirManifest":
        path = Path(model_dir) / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text())
            models = {k: ModelFiles(**v) for k, v in raw["models"].items()}
            return cls(task=raw["task"], models=models, options=raw.get("options", {}))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelLoadError(f"cannot read {path}: {err}") from None


def shipped_configs_dir() -> Path:
    """The configs that ship inside the mmocr 0.6.3 wheel (``mmocr/.mim/configs``)."""
    import mmocr

    return Path(mmocr.__file__).parent / ".mim" / "configs"


def resolve_config_path(config: str | os.PathLike) -> Path:
    """A config file path, or a path relative to mmocr's shipped configs."""
    path = Path(config)
    if path.is_file():
        return path.resolve()
    shipped = shipped_configs_dir() / path
    if shipped.is_file():
        return shipped
    raise ConversionError(
        f"config not found: {config} (neither a file nor a config shipped with mmocr "
        f"under {shipped_configs_dir()})"
    )


def load_config(config: str | os.PathLike, cfg_options: Optional[dict] = None):
    """Read and merge an MMOCR config (``_base_`` files included) into an mmcv Config."""
    import mmcv

    path = resolve_config_path(config)
    try:
        cfg = mmcv.Config.fromfile(str(path))
    except Exception as err:  # syntax errors, missing _base_ files
        raise ConversionError(f"cannot read config {path}: {err}") from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if "model" not in cfg:
        raise ConversionError(f"config {path} has no 'model' section")
    return cfg


def model_task(cfg) -> str:
    """``"det"`` for a text detector, ``"recog"`` for a text recognizer.

    Raises:
        ConversionError: KIE, NER and anything else, naming why.
    """
    import mmocr.models  # noqa: F401  (registers the model classes)
    from mmocr.models.builder import DETECTORS
    from mmocr.models.kie.extractors import SDMGR
    from mmocr.models.ner.classifiers import NerClassifier
    from mmocr.models.textdet.detectors import TextDetectorMixin
    from mmocr.models.textrecog.recognizer import BaseRecognizer

    name = cfg.model.get("type")
    cls = DETECTORS.get(name) if name else None
    if cls is None:
        raise ConversionError(f"model type {name!r} is not a model registered by mmocr 0.6.3")
    if issubclass(cls, SDMGR):
        raise ConversionError(
            f"{name} is a key information extraction (KIE) model: it needs text boxes and "
            "texts as input, not only an image; only text detectors and recognizers are served"
        )
    if issubclass(cls, NerClassifier):
        raise ConversionError(
            f"{name} is a named entity recognition (NER) model: it reads text, not images; "
            "only text detectors and recognizers are served"
        )
    if issubclass(cls, TextDetectorMixin):
        return DET
    if issubclass(cls, BaseRecognizer):
        return RECOG
    raise ConversionError(f"{name} is neither a text detector nor a text recognizer")


def _numpy_safe_globals() -> list:
    """Numpy types that MMCV checkpoints keep in their metadata; they hold data only."""
    import _codecs

    import numpy as np

    dtype_classes = {type(np.dtype(t)) for t in set(np.sctypeDict.values())}
    return [np.core.multiarray.scalar, np.dtype, np.ndarray, np.core.multiarray._reconstruct,
            _codecs.encode, *sorted(dtype_classes, key=str)]


def read_checkpoint(path: str | os.PathLike, trust: bool = False) -> Tuple[dict, dict]:
    """Load a checkpoint's state dict and metadata without running pickled code.

    Args:
        path: a ``.pth`` file: an MMCV checkpoint (``state_dict`` + ``meta``) or a bare
            state dict.
        trust: allow arbitrary unpickling (only for checkpoints from a trusted source).

    Returns:
        ``(state_dict, meta)``.

    Raises:
        ConversionError: unreadable file; UntrustedCheckpoint: it needs arbitrary
            unpickling and ``trust`` is false.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            ckpt = torch.load(str(path), map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        raise UntrustedCheckpoint(
            f"checkpoint {path} holds objects that only arbitrary unpickling can load "
            f"(which can run code): {str(err).splitlines()[0]}. Re-save it as a plain "
            "state dict, or pass --trust-checkpoint if you trust its source."
        ) from None
    except Exception as err:
        raise ConversionError(f"cannot load checkpoint {path}: {err}") from None
    if not isinstance(ckpt, dict):
        raise ConversionError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict")
    state = ckpt.get("state_dict", ckpt)
    meta = ckpt.get("meta", {}) if "state_dict" in ckpt else {}
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return state, meta if isinstance(meta, dict) else {}


def build_model(cfg, device: str = "cpu"):
    """Build an MMOCR model in eval mode on ``device`` with its initial weights."""
    import mmocr.datasets  # noqa: F401  (registers pipeline classes used by inference)
    from mmocr.apis import init_detector

    from mmocr.utils.model import revert_sync_batchnorm

    try:
        # SyncBN cannot run outside distributed training; readtext reverts it the same way.
        return revert_sync_batchnorm(init_detector(cfg, checkpoint=None, device=device))
    except Exception as err:
        raise ConversionError(f"cannot build model {cfg.model.get('type')}: {err}") from None


@contextlib.contextmanager
def _root_log_levels_kept():
    """Undo a side effect of importing mmcv and building a model: mmcv's ``get_logger`` sets
    the root logger's stream handlers to ERROR, and a TorchServe worker logs through such a
    handler, so without this the worker's own lines (model ready, batching chosen) vanish."""
    levels = {handler: handler.level for handler in logging.getLogger().handlers}
    try:
        yield
    finally:
        for handler, level in levels.items():
            handler.setLevel(level)


def load_weights(model, state_dict: dict) -> None:
    """Load a state dict into a model, refusing missing or unexpected keys.

    Raises:
        ConversionError: naming up to ten missing and ten unexpected keys.
    """
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ConversionError(f"checkpoint does not fit the model: {err}") from None
    problems: List[str] = []
    for label, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys)):
        if keys:
            shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
            problems.append(f"{label} keys: {shown}")
    if problems:
        raise ConversionError("checkpoint does not match the config's model; " + "; ".join(problems))


def load_model(config, checkpoint: str | os.PathLike, device: str = "cpu",
               cfg_options: Optional[dict] = None, trust: bool = False):
    """Config (path or Config) + checkpoint -> model ready for inference on ``device``."""
    with _root_log_levels_kept():
        cfg = load_config(config, cfg_options) if not hasattr(config, "model") else config
        model = build_model(cfg, "cpu")
    state, _ = read_checkpoint(checkpoint, trust=trust)
    load_weights(model, state)
    return model.to(device)


def load_engine(model_dir: str | os.PathLike, device: str = "cpu",
                options: Optional[dict] = None):
    """Build the inference engine from a model directory (an unpacked .mar).

    ``options`` (from the archive's model-config.yaml ``handler`` section) override the
    options recorded at conversion.

    Raises:
        ModelLoadError: the directory, its manifest or a model in it is unusable.
    """
    model_dir = Path(model_dir)
    manifest = ModelDirManifest.read(model_dir)
    models = {role: (model_dir / files.config, model_dir / files.checkpoint,
                     {key: str(model_dir / rel) for key, rel in files.files.items()})
              for role, files in manifest.models.items()}
    return engine_from_models(models, device, {**manifest.options, **(options or {})})


def engine_from_models(models: Dict[str, tuple], device: str = "cpu",
                       options: Optional[dict] = None, trust: bool = False):
    """Build the engine from ``{"det"|"recog": (config, checkpoint[, cfg_options])}``.

    Raises:
        ModelLoadError: a model cannot be built or loaded, or is not of its role.
    """
    from .engine import DEFAULT_MAX_BATCH, ModelRunner, OCREngine

    options = dict(options or {})
    if device == "cpu":
        set_cpu_threads(options.get("cpu_threads"), int(options.get("workers", 1)))
        set_cpu_memory(str(options.get("cpu_memory", "reuse")))
    layout = str(options.get("cpu_layout", "channels_last"))
    check_choice("cpu_layout", layout, CPU_LAYOUTS, ModelLoadError)
    # "auto": batched passes, up to the size measured cheapest per image on a CPU
    requested = options.get("max_forward_batch", "auto")
    auto = str(requested) == "auto"
    max_batch = DEFAULT_MAX_BATCH if auto else int(requested)
    # The most images a pass can get: the requests of one batch, or for the recognizer of
    # an end-to-end model, the text regions of them (any number)
    largest = {role: int(options.get("batch_size", 1)) for role in models}
    if len(models) == 2:
        largest[RECOG] = max_batch
    runners = {}
    for role, (config, checkpoint, *rest) in models.items():
        try:
            model = load_model(config, checkpoint, device=device,
                               cfg_options=rest[0] if rest else None, trust=trust)
        except ConversionError as err:
            raise ModelLoadError(f"cannot load the {role} model: {err.message}") from None
        runners[role] = ModelRunner(model, max_batch=max_batch)
        if runners[role].task != role:
            raise ModelLoadError(f"{config} is a {runners[role].task} model, given as {role}")
        if device == "cpu" and layout == "channels_last":
            runners[role].use_channels_last()
        if auto and device == "cpu":
            runners[role].calibrate(largest[role])
    return OCREngine(detector=runners.get(DET), recognizer=runners.get(RECOG), options=options)


def cpu_threads(requested: Optional[object], workers: int) -> int:
    """Threads for one CPU worker: ``requested`` (or the ``MMOCR_SERVE_CPU_THREADS``
    variable) when given, else the cores shared evenly, so workers x threads <= cores."""
    value = os.environ.get("MMOCR_SERVE_CPU_THREADS") or requested
    if value not in (None, "", 0, "0", "auto"):
        return max(1, int(value))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, workers))


def set_cpu_threads(requested: Optional[object], workers: int) -> int:
    import torch

    threads = cpu_threads(requested, workers)
    torch.set_num_threads(threads)
    return threads


# How a CPU worker stores the model's convolution weights (and so its activations).
CPU_LAYOUTS = {
    "channels_last": "NHWC, where oneDNN's convolutions run fastest (DBNet r18 x1.2 to x1.4 "
                     "on 2 cores); models with mmcv's compiled ops stay contiguous",
    "contiguous": "NCHW, PyTorch's default",
}

# What a CPU worker does with the memory a forward pass frees.
CPU_MEMORY = {
    "reuse": "keep it for the next pass (glibc's malloc stops mapping large blocks afresh): "
             "DBNet r18 ran 1.6x as fast on 2 cores, and a worker's memory stays at its peak",
    "release": "give it back to the system at once (glibc's default): every pass maps and "
               "zero-fills its large tensors again, half of DBNet's CPU time",
}
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h


def set_cpu_memory(mode: str) -> bool:
    """Apply a ``CPU_MEMORY`` mode to this process; returns whether it took effect.

    glibc's malloc serves blocks above 128 KB-32 MB with fresh ``mmap`` calls and unmaps
    them when freed, so each pass over a large image page-faults and zero-fills its
    activations again (DBNet r18 at 1248x736: 0.95 s of kernel time in a 1.7 s pass).
    "reuse" turns that off. Other C libraries (musl, macOS) are left as they are.
    """
    check_choice("cpu_memory", mode, CPU_MEMORY, ModelLoadError)
    if mode == "release":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        logging.getLogger(__name__).warning("mmocr-serve: not glibc; cpu_memory=reuse ignored")
        return False


def save_random_checkpoint(config, path: str | os.PathLike, seed: int = 0,
                           cfg_options: Optional[dict] = None) -> Path:
    """Initialise a model from a config (random weights, no download) and save it.

    For demos and tests only: the weights are random, so results are meaningless.
    """
    import torch

    cfg = load_config(config, cfg_options)
    torch.manual_seed(seed)
    model = build_model(cfg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"mmocr_serve_random_init": True, "seed": seed}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, str(path))
    return path
