"""Compares a served answer with in-process inference, with explicit tolerances."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

COORD_TOL = 1e-3  # pixels
SCORE_TOL = 1e-4


@dataclass
class Comparison:
    """A structured difference: what matched, the largest deviations, and any mismatch."""

    kind: str
    count_expected: int = 0
    count_served: int = 0
    max_coord_diff: float = 0.0
    max_score_diff: float = 0.0
    text_equal: bool = True
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def compare(expected: dict, served: dict, coord_tol: float = COORD_TOL,
            score_tol: float = SCORE_TOL) -> Comparison:
    """Compare two wire-format dicts (``results`` module) of the same task."""
    if "boundary_result" in expected:
        return _compare_detection(expected, served, coord_tol, score_tol)
    if "result" in expected:
        return _compare_ocr(expected, served, coord_tol, score_tol)
    return _compare_recognition(expected, served, score_tol)


def _compare_detection(expected: dict, served: dict, coord_tol: float,
                       score_tol: float) -> Comparison:
    exp, got = expected["boundary_result"], served.get("boundary_result")
    result = Comparison("det", count_expected=len(exp))
    if got is None:
        result.problems.append(f"served answer has no boundary_result: {served}")
        return result
    result.count_served = len(got)
    if len(exp) != len(got):
        result.problems.append(f"{len(got)} boxes served, {len(exp)} expected")
        return result
    for i, (e, g) in enumerate(zip(exp, got)):
        if len(e) != len(g):
            result.problems.append(f"box {i}: {len(g) - 1} coordinates served, {len(e) - 1} expected")
            continue
        coord = max((abs(a - b) for a, b in zip(e[:-1], g[:-1])), default=0.0)
        score = abs(e[-1] - g[-1])
        result.max_coord_diff = max(result.max_coord_diff, coord)
        result.max_score_diff = max(result.max_score_diff, score)
    if result.max_coord_diff > coord_tol:
        result.problems.append(f"coordinates differ by {result.max_coord_diff:.6g} > {coord_tol}")
    if result.max_score_diff > score_tol:
        result.problems.append(f"scores differ by {result.max_score_diff:.6g} > {score_tol}")
    return result


def _compare_recognition(expected: dict, served: dict, score_tol: float) -> Comparison:
    result = Comparison("recog", count_expected=1, count_served=int("text" in served))
    if "text" not in served:
        result.problems.append(f"served answer has no text: {served}")
        return result
    result.text_equal = expected["text"] == served["text"]
    if not result.text_equal:
        result.problems.append(f"text {served['text']!r} served, {expected['text']!r} expected")
    result.max_score_diff = abs(expected["score"] - served.get("score", float("nan")))
    if not result.max_score_diff <= score_tol:
        result.problems.append(f"scores differ by {result.max_score_diff:.6g} > {score_tol}")
    return result


def _compare_ocr(expected: dict, served: dict, coord_tol: float, score_tol: float) -> Comparison:
    """End-to-end answers: the boxes as detections, then each box's text and text score."""
    exp, got = expected["result"], served.get("result")
    if got is None:
        result = Comparison("ocr", count_expected=len(exp))
        result.problems.append(f"served answer has no result: {served}")
        return result
    as_boxes = [{"boundary_result": [[*i["box"], i["box_score"]] for i in items]}
                for items in (exp, got)]
    result = _compare_detection(*as_boxes, coord_tol, score_tol)
    result.kind = "ocr"
    if result.count_served != result.count_expected:
        return result
    for i, (e, g) in enumerate(zip(exp, got)):
        if e["text"] != g.get("text"):
            result.text_equal = False
            result.problems.append(f"box {i}: text {g.get('text')!r} served, {e['text']!r} expected")
        diff = abs(e["text_score"] - g.get("text_score", float("nan")))
        if not diff <= score_tol:
            result.problems.append(f"box {i}: text scores differ by {diff:.6g} > {score_tol}")
        result.max_score_diff = max(result.max_score_diff, diff)
    return result
