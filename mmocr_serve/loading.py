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

from .errors import ConversionError, ModelLoadError, UntrustedCheckpoint
from .tasks import DET, RECOG

MANIFEST_NAME = "mmocr-serve.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ModelFiles:
    """Where one model's files lie inside a model directory (paths relative to it)."""

    config: str
    checkpoint: str
    # config key (dotted) -> packed file, re-pointed at load time
    files: Dict[str, str] = field(default_factory=dict)
    network: Optional[str] = None  # an exported ONNX network (onnx_backend), if any


@dataclass(frozen=True)
class ModelDirManifest:
    """``mmocr-serve.json``: what a model directory (an unpacked .mar) holds."""

    task: str
    models: Dict[str, ModelFiles]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "task": self.task,
                "models": {k: vars(v) for k, v in self.models.items()},
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
            return cls(task=raw["task"], models=models)
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
