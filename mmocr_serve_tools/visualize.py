"""Side-by-side pictures of an in-process result and a served result (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

BAND = 24  # px above each panel ("in-process" / "served") and below it (text or box count)
GAP = 8    # px between the panels


def comparison_size(width: int, height: int) -> tuple:
    """(width, height) of the picture drawn for an image of ``width`` x ``height``."""
    return 2 * width + GAP, height + 2 * BAND


def draw_comparison(image: np.ndarray, expected: dict, served: Optional[dict],
                    path: Path) -> Path:
    """Write a PNG: the in-process result on the left, the served one on the right."""
    left = _panel(image, expected, "in-process")
    right = _panel(image, served or {}, "served")
    canvas = np.full((left.shape[0], left.shape[1] * 2 + GAP, 3), 255, np.uint8)
    canvas[:, :left.shape[1]] = left
    canvas[:, left.shape[1] + GAP:] = right
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"cannot write {path}")
    return path


def _panel(image: np.ndarray, result: dict, label: str) -> np.ndarray:
    img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    img = img.copy()
    polygons = [b[:-1] for b in result.get("boundary_result", [])]
    polygons += [item["box"] for item in result.get("result", [])]
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        cv2.polylines(img, [np.round(points).astype(np.int32)], True, (0, 0, 255), 2)
    if "boundary_result" in result:
        caption = f"{len(result['boundary_result'])} boxes"
    elif "result" in result:
        caption = " | ".join(item["text"] for item in result["result"]) or "no text"
    elif "text" in result:
        caption = f"{result['text']}  ({result.get('score', 0.0):.3f})"
    else:
        caption = "no answer"
    panel = np.full((img.shape[0] + 2 * BAND, img.shape[1], 3), 255, np.uint8)
    panel[BAND:BAND + img.shape[0]] = img
    _put_text(panel, label, 0)
    _put_text(panel, caption, BAND + img.shape[0])
    return panel


def _put_text(panel: np.ndarray, text: str, top: int) -> None:
    """Render text (Unicode included) into a band of ``panel`` starting at row ``top``."""
    from PIL import Image, ImageDraw, ImageFont

    band = Image.fromarray(panel[top:top + BAND, :, ::-1].copy())
    ImageDraw.Draw(band).text((3, 3), text, fill=(0, 0, 0),
                              font=ImageFont.load_default(size=BAND - 8))
    panel[top:top + BAND] = np.asarray(band)[:, :, ::-1]
