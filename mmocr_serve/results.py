"""Typed results and the one place that defines the wire format.

Detection, one JSON object per image (MMOCR's documented format)::

    {"boundary_result": [[x1, y1, ..., xn, yn, score], ...]}

Recognition, one JSON object per image::

    {"text": "hello", "score": 0.93, "char_scores": [0.9, ...]}

``score`` is one float: the mean of the per-character scores when the model gives them
(``0.0`` for an empty text), or the model's own float. ``char_scores`` is present only
when the model gives per-character scores. Errors are ``{"code", "type", "message"}``
(see ``errors.ServeError.to_dict``). Every value is a plain JSON type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence


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
