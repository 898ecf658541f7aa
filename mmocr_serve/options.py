"""Per-request options: parsed from JSON keys, multipart form fields, or query parameters.

TorchServe 0.12 passes query parameters to the handler on ``/invocations?model_name=NAME``
but drops them on ``/predictions/NAME``; JSON keys and form fields work on both.

Options (detection and end-to-end archives; a recognizer takes none):

- ``score_thr`` (float in [0, 1], default 0): drop detected boxes scoring below it.
- ``order`` (``detector`` or ``reading``, default ``detector``): ``reading`` sorts the
  boxes top-to-bottom in lines, then left-to-right within a line.

The defaults give exactly MMOCR's own output (``model_inference`` / ``readtext``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

from .errors import InvalidOption, check_choice

IMAGE_FIELDS = ("body", "data", "image")
ROUTING_FIELDS = ("model_name",)  # TorchServe's own query parameter on /invocations
ORDERS = ("detector", "reading")


@dataclass(frozen=True)
class RequestOptions:
    score_thr: float = 0.0
    order: str = "detector"


NO_OPTIONS = RequestOptions()
KNOWN = ("score_thr", "order")


def split_request(row: Any) -> Tuple[Any, Dict[str, Any]]:
    """Separate a request row into its image payload and its raw options.

    The image is the ``body``, ``data`` or ``image`` field, or else (a multipart upload
    with another field name) the largest bytes field; every other field is an option.

    """
    if not isinstance(row, Mapping):
        return row, {}
    image_keys = [k for k in IMAGE_FIELDS if k in row][:1]
    if not image_keys:
        files = [k for k, v in row.items() if isinstance(v, (bytes, bytearray))]
        image_keys = sorted(files, key=lambda k: len(row[k]), reverse=True)[:1]
    payload = {k: row[k] for k in image_keys}
    raw = {k: v for k, v in row.items() if k not in image_keys and k not in ROUTING_FIELDS}
    body = payload.get("body")
    if isinstance(body, Mapping) and any(k in body for k in IMAGE_FIELDS):
        # a JSON body: its non-image keys are options too
        payload["body"] = {k: v for k, v in body.items() if k in IMAGE_FIELDS}
        raw.update({k: v for k, v in body.items() if k not in IMAGE_FIELDS})
    return payload, raw


def parse_options(raw: Mapping[str, Any], accepts_options: bool) -> RequestOptions:
    """Validate raw options.

    Raises:
        InvalidOption: an unknown option, a bad value, or any option for a recognizer.
    """
    unknown = sorted(set(raw) - set(KNOWN)) if accepts_options else sorted(raw)
    if unknown:
        known = ", ".join(KNOWN) if accepts_options else "none for a recognizer"
        raise InvalidOption(f"unknown option(s) {', '.join(unknown)}; known options: {known}")
    options = {k: _text(v) for k, v in raw.items()}
    score_thr = NO_OPTIONS.score_thr
    if "score_thr" in options:
        try:
            score_thr = float(options["score_thr"])
        except ValueError:
            score_thr = math.nan
        if not 0.0 <= score_thr <= 1.0:
            raise InvalidOption(
                f"score_thr must be a number from 0 to 1, not {options['score_thr']!r}")
    order = options.get("order", NO_OPTIONS.order)
    check_choice("order", order, ORDERS, InvalidOption)
    return RequestOptions(score_thr=score_thr, order=order)


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace").strip()
    return str(value).strip()
