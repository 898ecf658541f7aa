"""Batched passes for any model: items grouped by a key run in passes of at most N, and an
item that fails fails alone. What an item is, and what may share a pass, is the caller's.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Hashable, List, Sequence, Tuple

from .errors import InferenceError, ServeError

logger = logging.getLogger(__name__)


@dataclass
class Stats:
    """What requests cost, by stage, and what the models ran; filled in by the engine
    (``predict_payloads``) and its passes for the front end to report (the handler's metrics)."""

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


def run_in_passes(items: Sequence[Any], prepare: Callable[[Any], Any],
                  key: Callable[[Any, int], Hashable], forward: Callable[[List[Any]], list],
                  max_items: int, stats: Stats) -> list:
    """Prepare each item, then forward those of one key together, in order, in passes of
    at most ``max_items``.

    Args:
        prepare: an item -> its prepared form; a ``ServeError`` it raises is that item's
            outcome.
        key: a prepared item and its index -> what it may share a pass with (equal keys).
        forward: prepared items -> one outcome each.
        stats: gets the time of both steps, the passes and the items in them.

    Returns:
        One entry per item, in order: its outcome, or its ``ServeError``. A failed pass of
        several items is rerun one item a pass; an item that fails alone gets an
        ``InferenceError``.
    """
    out: List[Any] = [None] * len(items)
    prepared, groups = _prepared_groups(items, prepare, key, out, stats)

    def one_pass(members: List[int]) -> list:
        stats.passes += 1
        stats.pass_images += len(members)
        return forward([prepared[idx] for idx in members])

    began = time.perf_counter()
    for members in groups:
        for start in range(0, len(members), max_items):
            chunk = members[start:start + max_items]
            outcomes = isolated(one_pass, chunk, lambda idx: f"image {idx} of a batch")
            for idx, outcome in zip(chunk, outcomes):
                out[idx] = outcome
    stats.forward_ms += (time.perf_counter() - began) * 1000
    return out


def _prepared_groups(items: Sequence[Any], prepare: Callable[[Any], Any],
                     key: Callable[[Any, int], Hashable], out: list,
                     stats: Stats) -> Tuple[Dict[int, Any], List[List[int]]]:
    """Each item prepared (or its error put in ``out``), and the indexes of the prepared
    ones grouped by key, in order of first appearance."""
    prepared, groups = {}, {}
    began = time.perf_counter()
    for idx, item in enumerate(items):
        try:
            prepared[idx] = prepare(item)
        except ServeError as err:
            out[idx] = err
            continue
        groups.setdefault(key(prepared[idx], idx), []).append(idx)
    stats.preprocess_ms += (time.perf_counter() - began) * 1000
    return prepared, list(groups.values())


def isolated(run: Callable[[list], list], items: list, describe: Callable[[Any], str]) -> list:
    """``run(items)``, one outcome per item; should it raise, each item is rerun on its own,
    so that only the item at fault fails.

    Returns:
        One entry per item: its outcome, or an ``InferenceError`` where it failed alone
        (logged with the traceback as "inference failed on ``describe(item)``").
    """
    try:
        return run(items)
    except Exception as err:
        if len(items) > 1:
            return [isolated(run, [item], describe)[0] for item in items]
        logger.exception("inference failed on %s", describe(items[0]))
        return [InferenceError(f"inference failed: {type(err).__name__}: {err}")]
