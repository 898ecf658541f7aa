"""Compares a served answer with in-process inference, with explicit tolerances."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

COORD_TOL = 1e-3  # pixels
SCORE_TOL = 1e-4


@dataclass(frozen=True)
class Tolerance:
    """How far a served answer may be from in-process inference."""

    coord: float = COORD_TOL  # pixels, box by box in order (when min_iou is None)
    score: float = SCORE_TOL  # box, text and recognition scores
    # None: boxes are compared in order, coordinate by coordinate, and their counts must be
    # equal. A number: boxes are paired by overlap (bounding rectangles, the most overlapping
    # pairs first, each at least this much), so that boxes whose order changed still pair up,
    # and ``box_share`` of the larger count must pair.
    min_iou: Optional[float] = None
    box_share: float = 1.0
    text_share: float = 1.0  # the share of boxes (or recognitions) whose texts must be equal
    # Box scores may exceed ``score`` by up to ``flip_score`` in 1 box of every
    # ``flip_boxes`` (at least one box per answer): a probability-map pixel right at DBNet's
    # threshold flips when convolutions sum in another order (channels-last on AVX-512
    # CPUs), and moves that one box's mean score (docs/batching.md).
    flip_score: float = 0.01
    flip_boxes: int = 100


EXACT = Tolerance()
# A bf16 archive (--cpu-precision bf16) against float32 in-process inference: measured in
# benchmarks/bf16.md, with a margin.
BF16 = Tolerance(coord=float("inf"), score=float("inf"), min_iou=0.5, box_share=0.98,
                 text_share=0.9)
PRECISION_TOLERANCES = {"fp32": EXACT, "bf16": BF16}


@dataclass
class Comparison:
    """A structured difference: what matched, the largest deviations, and any mismatch."""

    kind: str
    count_expected: int = 0
    count_served: int = 0
    max_coord_diff: float = 0.0
    max_score_diff: float = 0.0
    text_equal: bool = True
    min_iou: float = 1.0  # of the paired boxes
    texts_equal: int = 0  # boxes (or recognitions) whose texts are equal
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def compare(expected: dict, served: dict, tolerance: Tolerance = EXACT) -> Comparison:
    """Compare two wire-format dicts (``results`` module) of the same task."""
    if "boundary_result" in expected:
        return _compare_detection(expected, served, tolerance)
    if "result" in expected:
        return _compare_ocr(expected, served, tolerance)
    return _compare_recognition(expected, served, tolerance)


def _compare_detection(expected: dict, served: dict, tolerance: Tolerance) -> Comparison:
    exp, got = expected["boundary_result"], served.get("boundary_result")
    if got is None:
        return _missing("det", "boundary_result", exp, served)
    return _compare_boxes("det", exp, got, tolerance)[0]


def _missing(kind: str, name: str, exp: list, served: dict) -> Comparison:
    result = Comparison(kind, count_expected=len(exp))
    result.problems.append(f"served answer has no {name}: {served}")
    return result


def _compare_boxes(kind: str, exp: list, got: list, tolerance: Tolerance
                   ) -> Tuple[Comparison, List[Tuple[int, int]]]:
    """Boxes as ``[x1, y1, ..., score]``; returns the comparison and the (expected, served)
    index pairs it compared."""
    result = Comparison(kind, count_expected=len(exp), count_served=len(got))
    if tolerance.min_iou is None and len(exp) != len(got):
        result.problems.append(f"{len(got)} boxes served, {len(exp)} expected")
        return result, []
    pairs = (list(zip(range(len(exp)), range(len(got)))) if tolerance.min_iou is None
             else _pair_by_overlap(exp, got, tolerance.min_iou))
    most = max(len(exp), len(got))
    if len(pairs) < tolerance.box_share * most:
        result.problems.append(f"{len(pairs)} of {most} boxes pair up at IoU "
                               f"{tolerance.min_iou} or more ({len(got)} served, {len(exp)} "
                               f"expected)")
    for i, j in pairs:
        e, g = exp[i], got[j]
        if tolerance.min_iou is not None:
            result.min_iou = min(result.min_iou, box_iou(e[:-1], g[:-1]))
        if len(e) != len(g):
            if tolerance.min_iou is None:
                result.problems.append(f"box {i}: {len(g) - 1} coordinates served, "
                                       f"{len(e) - 1} expected")
        else:
            result.max_coord_diff = max(result.max_coord_diff,
                                        max((abs(a - b) for a, b in zip(e[:-1], g[:-1])),
                                            default=0.0))
        result.max_score_diff = max(result.max_score_diff, abs(e[-1] - g[-1]))
    if result.max_coord_diff > tolerance.coord:
        result.problems.append(f"coordinates differ by {result.max_coord_diff:.6g} > "
                               f"{tolerance.coord}")
    flips = [abs(exp[i][-1] - got[j][-1]) for i, j in pairs
             if abs(exp[i][-1] - got[j][-1]) > tolerance.score]
    if flips and (max(flips) > tolerance.flip_score
                  or len(flips) > max(1, len(pairs) // tolerance.flip_boxes)):
        result.problems.append(f"box scores differ by up to {max(flips):.6g} in {len(flips)} "
                               f"of {len(pairs)} boxes (tolerance {tolerance.score}, or "
                               f"{tolerance.flip_score} in 1 box of {tolerance.flip_boxes})")
    return result, pairs


def _pair_by_overlap(exp: Sequence[list], got: Sequence[list], min_iou: float
                     ) -> List[Tuple[int, int]]:
    """Expected boxes with served boxes overlapping them by ``min_iou`` or more, the most
    overlapping pairs first."""
    scored = sorted(((iou, i, j) for i, e in enumerate(exp) for j, g in enumerate(got)
                     if (iou := box_iou(e[:-1], g[:-1])) >= min_iou), reverse=True)
    used_e, used_g, pairs = set(), set(), []
    for _, i, j in scored:
        if i not in used_e and j not in used_g:
            used_e.add(i)
            used_g.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two polygons' bounding rectangles."""
    ax, ay, bx, by = a[0::2], a[1::2], b[0::2], b[1::2]
    width = min(max(ax), max(bx)) - max(min(ax), min(bx))
    height = min(max(ay), max(by)) - max(min(ay), min(by))
    inter = max(0.0, width) * max(0.0, height)
    union = ((max(ax) - min(ax)) * (max(ay) - min(ay)) + (max(bx) - min(bx)) * (max(by) - min(by))
             - inter)
    return inter / union if union > 0 else float(a == b)


def _compare_recognition(expected: dict, served: dict, tolerance: Tolerance) -> Comparison:
    result = Comparison("recog", count_expected=1, count_served=int("text" in served))
    if "text" not in served:
        result.problems.append(f"served answer has no text: {served}")
        return result
    result.text_equal = expected["text"] == served["text"]
    result.texts_equal = int(result.text_equal)
    if result.texts_equal < tolerance.text_share:
        result.problems.append(f"text {served['text']!r} served, {expected['text']!r} expected")
    result.max_score_diff = abs(expected["score"] - served.get("score", float("nan")))
    if not result.max_score_diff <= tolerance.score:
        result.problems.append(f"scores differ by {result.max_score_diff:.6g} > {tolerance.score}")
    return result


def _compare_ocr(expected: dict, served: dict, tolerance: Tolerance) -> Comparison:
    """End-to-end answers: the boxes as detections, then each box's text and text score."""
    exp, got = expected["result"], served.get("result")
    if got is None:
        return _missing("ocr", "result", exp, served)
    as_boxes = [[[*i["box"], i["box_score"]] for i in items] for items in (exp, got)]
    result, pairs = _compare_boxes("ocr", *as_boxes, tolerance)
    differing = []
    for i, j in pairs:
        e, g = exp[i], got[j]
        if e["text"] == g.get("text"):
            result.texts_equal += 1
        else:
            differing.append(f"box {i}: text {g.get('text')!r} served, {e['text']!r} expected")
        diff = abs(e["text_score"] - g.get("text_score", float("nan")))
        if not diff <= tolerance.score:
            result.problems.append(f"box {i}: text scores differ by {diff:.6g} > {tolerance.score}")
        result.max_score_diff = max(result.max_score_diff, diff)
    result.text_equal = not differing
    if pairs and result.texts_equal < tolerance.text_share * len(pairs):
        result.problems += differing
    return result
