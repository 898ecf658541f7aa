"""Typed results and the one place that defines the wire format.

Detection, one JSON object per image (MMOCR's documented format)::

    {"boundary_result": [[x1, y1, ..., xn, yn, score], ...]}

Recognition, one JSON object per image::

    {"text": "hello", "score": 0.93, "char_scores": [0.9, ...]}

End-to-end (detect, crop, recognise), one JSON object per image, as MMOCR's ``readtext``
gives it (box corners rounded to integers)::

    {"result": [{"box": [x1, y1, ..., xn, yn], "box_score": 0.87,
                 "text": "hello", "text_score": 0.93}, ...]}

``score`` is one float: the mean of the per-character scores when the model gives them
(``0.0`` for an empty text), or the model's own float. ``char_scores`` is present only
when the model gives per-character scores. Errors are ``{"code", "type", "message"}``
(see ``errors.ServeError.to_dict``). Every value is a plain JSON type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class TextInstance:
    """One detected text region: a closed polygon (x1, y1, ..., xn, yn) and its score."""

    polygon: List[float]
    score: float

    def to_list(self) -> List[float]:
        return [*self.polygon, self.score]


@dataclass(frozen=True)
class DetectionResult:
    """All text regions found in one image."""

    instances: List[TextInstance] = field(default_factory=list)

    @classmethod
    def from_mmocr(cls, raw: dict) -> "DetectionResult":
        """Build from MMOCR's ``{"boundary_result": [[..., score], ...]}``."""
        instances = []
        for boundary in raw.get("boundary_result", []):
            values = [float(v) for v in boundary]
            instances.append(TextInstance(polygon=values[:-1], score=values[-1]))
        return cls(instances)

    def to_dict(self) -> dict:
        return {"boundary_result": [inst.to_list() for inst in self.instances]}

    def select(self, score_thr: float = 0.0, order: str = "detector") -> "DetectionResult":
        """Drop instances scoring below ``score_thr``; ``order="reading"`` sorts them."""
        kept = [inst for inst in self.instances if inst.score >= score_thr]
        return DetectionResult(reading_order(kept) if order == "reading" else kept)


def reading_order(instances: List[TextInstance]) -> List[TextInstance]:
    """Top-to-bottom in lines, left-to-right within a line (``reading_lines``)."""
    return [inst for line in reading_lines(instances, lambda i: i.polygon) for inst in line]


def reading_lines(things: Sequence[T], polygon: Callable[[T], Sequence[float]]) -> List[List[T]]:
    """``things`` in lines, top to bottom, each line left to right. ``polygon`` gives a
    thing's ``x1, y1, ..., xn, yn``: a ``TextInstance``'s, or an answer item's ``box``.

    Two things share a line when their vertical centres differ by less than half the
    smaller of their heights.
    """
    def extent(thing: T):
        points = polygon(thing)
        ys, xs = points[1::2], points[0::2]
        return (min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs)

    lines: List[List[T]] = []
    for thing in sorted(things, key=lambda t: extent(t)[0]):
        centre, height, _ = extent(thing)
        if lines:
            last_centre, last_height, _ = extent(lines[-1][-1])
            if abs(centre - last_centre) < min(height, last_height) / 2:
                lines[-1].append(thing)
                continue
        lines.append([thing])
    return [sorted(line, key=lambda t: extent(t)[2]) for line in lines]


@dataclass(frozen=True)
class Recognition:
    """The text read from one image, with one score and, if given, per-character scores."""

    text: str
    score: float
    char_scores: Optional[List[float]] = None

    @classmethod
    def from_mmocr(cls, raw: dict) -> "Recognition":
        """Build from MMOCR's ``{"text": str, "score": float | list[float]}``."""
        score = raw.get("score", 0.0)
        if isinstance(score, Sequence) or hasattr(score, "__len__"):
            chars = [float(s) for s in score]
            mean = sum(chars) / len(chars) if chars else 0.0
            return cls(text=str(raw["text"]), score=mean, char_scores=chars)
        return cls(text=str(raw["text"]), score=float(score))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"text": self.text, "score": self.score}
        if self.char_scores is not None:
            out["char_scores"] = self.char_scores
        return out


@dataclass(frozen=True)
class OCRItem:
    """One text region with the text read from its crop (a ``readtext`` result entry)."""

    box: List[int]
    box_score: float
    text: str
    text_score: float

    def to_dict(self) -> dict:
        return {"box": self.box, "box_score": self.box_score, "text": self.text,
                "text_score": self.text_score}


@dataclass(frozen=True)
class OCRResult:
    """Every text region of one image with its text, in the order asked for."""

    items: List[OCRItem] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"result": [item.to_dict() for item in self.items]}


def readtext_score(raw: dict) -> float:
    """``readtext``'s text score: per-character scores summed over max(1, len(text))."""
    score = raw.get("score", 0.0)
    if isinstance(score, (list, tuple)):
        return float(sum(score) / max(1, len(raw["text"])))
    return float(score)
