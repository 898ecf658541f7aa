"""The AIGES (iFlytek AI engine) front end over the engine: one service both wrapper styles call.

``wrapper.py`` exposes it to the loader in function style (``wrapperInit`` ...) and in
class style (``Wrapper(WrapperBase)``). Error codes are mapped here, in one place, and
avoid the loader's own table (10003-10012, 10013, 10019, 10041-10044, 10101-10110,
10300-10301, 10400-10406, 10600, 10901-10910, 20001-20002, 30001-30003).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .errors import (BadRequest, ImageTooLarge, InferenceError, InvalidOption, ModelLoadError,
                     ServeError, UnprocessableImage)
from .options import KNOWN

logger = logging.getLogger(__name__)

OK = 0
MODEL_LOAD_FAILED = 10001  # the original example's code
NOT_INITIALISED = 10801
NO_IMAGE_DATA = 10802  # the example used 10013, which the loader also uses for HTTP time-outs
INVALID_IMAGE = 10803
IMAGE_TOO_LARGE = 10804
UNPROCESSABLE_IMAGE = 10805
INVALID_OPTION = 10806
INFERENCE_FAILED = 10807
INTERNAL_ERROR = 10808

ERROR_TEXT = {
    MODEL_LOAD_FAILED: "load model failed: check the [wrapper] model keys in aiges.toml",
    NOT_INITIALISED: "wrapperOnceExec called before a successful wrapperInit",
    NO_IMAGE_DATA: "reqData has no non-empty stream with key 'data' (the image)",
    INVALID_IMAGE: "the 'data' stream is not a decodable image (JPEG, PNG, BMP, TIFF or WebP)",
    IMAGE_TOO_LARGE: "the image has more pixels than max_image_pixels",
    UNPROCESSABLE_IMAGE: "the model's preprocessing cannot take this image's size",
    INVALID_OPTION: "a request parameter (score_thr, order) has a bad value",
    INFERENCE_FAILED: "the model failed on this image",
    INTERNAL_ERROR: "unexpected error in wrapper.py (see its log)",
}

_BY_ERROR = ((ImageTooLarge, IMAGE_TOO_LARGE), (UnprocessableImage, UNPROCESSABLE_IMAGE),
             (InvalidOption, INVALID_OPTION), (BadRequest, INVALID_IMAGE),
             (InferenceError, INFERENCE_FAILED), (ModelLoadError, MODEL_LOAD_FAILED))

RESPONSE_KEY = "boxes"  # what the client's xtest.toml expects
DATA_TEXT, STATUS_ONCE = 0, 3


def error_code(err: BaseException) -> int:
    for cls, code in _BY_ERROR:
        if isinstance(err, cls):
            return code
    return INTERNAL_ERROR


def error_text(code: int) -> str:
    """The loader's ``wrapperError``: one fixed text per code."""
    return ERROR_TEXT.get(code, f"unknown error code {code}")


MODEL_KEYS = ("det_config", "det_checkpoint", "recog_config", "recog_checkpoint", "device")


def engine_from_wrapper_config(config: Mapping[str, str]):
    """``[wrapper]`` keys (all strings) -> engine, with this process's settings applied.

    Keys: ``det_config`` + ``det_checkpoint`` and/or ``recog_config`` + ``recog_checkpoint``
    (both pairs: end-to-end OCR), ``device`` (default ``cpu``), and any runtime option
    (``HANDLER_KEYS`` in ``mmocr_serve.runtime``).
    """
    from .engine import engine_from_models
    from .runtime import RuntimeOptions, apply_process_settings
    from .tasks import DET, RECOG

    models = {}
    for role in (DET, RECOG):
        config_path, checkpoint = config.get(f"{role}_config"), config.get(f"{role}_checkpoint")
        if bool(config_path) != bool(checkpoint):
            raise ModelLoadError(f"{role}_config and {role}_checkpoint go together")
        if config_path:
            models[role] = (config_path, checkpoint)
    if not models:
        raise ModelLoadError("[wrapper] needs det_config/det_checkpoint and/or "
                             "recog_config/recog_checkpoint")
    device = config.get("device") or "cpu"
    # the loader may pass keys of its own: those are logged, not refused
    others = sorted(set(config) - set(MODEL_KEYS) - set(RuntimeOptions.__dataclass_fields__))
    if others:
        logger.warning("mmocr-serve: [wrapper] keys ignored: %s", ", ".join(others))
    options = RuntimeOptions.from_mapping(config, other_keys=(*MODEL_KEYS, *others))
    settings = apply_process_settings(options, device)
    engine = engine_from_models(models, device, options)
    logger.info("mmocr-serve: %s engine ready on %s (%s)", engine.task, device,
                settings or "GPU")
    return engine


class AigesService:
    """Loads once, then answers one request at a time (calls may come from many threads)."""

    def __init__(self):
        self.engine = None
        self._lock = threading.Lock()

    def init(self, config: Mapping[str, str]) -> int:
        try:
            engine = engine_from_wrapper_config(config)
        except Exception:
            logger.exception("wrapperInit failed")
            return MODEL_LOAD_FAILED
        with self._lock:
            self.engine = engine
        logger.info("mmocr-serve AIGES wrapper ready: %s", engine.task)
        return OK

    def fini(self) -> int:
        with self._lock:
            self.engine = None
        return OK

    def exec(self, params: Mapping[str, str], image: Optional[bytes]) -> Tuple[int, Optional[str]]:
        """One image -> (0, ASCII JSON) or (error code, None)."""
        if not image:
            return NO_IMAGE_DATA, None
        try:
            with self._lock:
                if self.engine is None:
                    return NOT_INITIALISED, None
                raw = {k: v for k, v in params.items() if k in KNOWN}
                out = self.engine.predict_payloads([{"body": image, **raw}])[0]
        except Exception:
            logger.exception("wrapperOnceExec failed")
            return INTERNAL_ERROR, None
        if isinstance(out, ServeError):
            logger.info("request refused: %s", out.message)
            return error_code(out), None
        return OK, json.dumps(out.to_dict(), ensure_ascii=True)


def image_stream(req_data: Sequence[Any], key: str = "data") -> Optional[bytes]:
    """The bytes of the stream named ``key`` in the loader's reqData (dicts or DataListNodes)."""
    for node in req_data or ():
        node_key = node.get("key") if isinstance(node, Mapping) else getattr(node, "key", None)
        if node_key == key:
            data = node.get("data") if isinstance(node, Mapping) else getattr(node, "data", None)
            return bytes(data) if data else None
    return None


def response_node(data: str) -> Dict[str, Any]:
    """The function-style loader's respData entry for a successful answer."""
    return {"key": RESPONSE_KEY, "data": data, "len": len(data), "status": STATUS_ONCE,
            "type": DATA_TEXT}
