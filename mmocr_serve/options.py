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
from typing import Any, Mapping

from .errors import InvalidOption, check_choice

ORDERS = ("detector", "reading")


@dataclass(frozen=True)
class RequestOptions:
    score_thr: float = 0.0
    order: str = "detector"


NO_OPTIONS = RequestOptions()
KNOWN = ("score_thr", "order")


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
