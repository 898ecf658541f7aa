"""Rendered text with known ground truth: the demo models' training and held-out data.

A page is words in lines (lowercase letters and digits, several fonts, sizes and colours,
slight rotation, blur and noise) on a plain, gradient or textured background; each word
has its quadrilateral and text. Word crops for the recognizer are cut from such pages
with MMOCR's own ``crop_img`` padding around a jittered box, as end-to-end OCR cuts them.
The words are split by a hash into a training vocabulary and a held-out one, so that an
evaluation never reads a word the models were trained on. Rendering needs only PIL and
numpy; cutting crops uses MMOCR's, and matching boxes shapely.
"""

from __future__ import annotations

import glob
import math
import os
import string
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CHARSET = string.ascii_lowercase + string.digits  # what the demo recognizer reads (DICT36)
TRAIN, HELD_OUT = "train", "held-out"
_VOWELS, _CONSONANTS = "aeiouy", "bcdfghjklmnpqrstvwxz"


@dataclass(frozen=True)
class Word:
    text: str
    quad: Tuple[float, ...]  # x1, y1, ... x4, y4 clockwise from the top left, page pixels


@dataclass(frozen=True)
class Page:
    image: np.ndarray  # H x W x 3, RGB, uint8
    words: Tuple[Word, ...]  # line by line, left to right
    lines: int = 0

    def save(self, path: str) -> None:
        Image.fromarray(self.image).save(path, quality=95)


@lru_cache(maxsize=1)
def font_files() -> Tuple[str, ...]:
    """TrueType fonts that matplotlib ships (DejaVu and STIX families); nothing downloaded."""
    import matplotlib

    ttf = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    names = sorted(glob.glob(os.path.join(ttf, "DejaVu*.ttf"))
                   + glob.glob(os.path.join(ttf, "STIXGeneral*.ttf")))
    return tuple(n for n in names if "Display" not in n)


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def split_of(word: str) -> str:
    """Which vocabulary a word belongs to: one word in eight is held out, by its hash."""
    return HELD_OUT if zlib.crc32(word.encode()) % 8 == 0 else TRAIN


def random_word(rng: np.random.Generator, split: str = TRAIN) -> str:
    """A word of ``split``'s vocabulary: pronounceable, random characters, or a number."""
    while True:
        kind = rng.random()
        if kind < 0.5:
            syllables = int(rng.integers(1, 5))
            word = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS))
                           + (rng.choice(list(_CONSONANTS)) if rng.random() < 0.3 else "")
                           for _ in range(syllables))
        elif kind < 0.8:
            word = "".join(rng.choice(list(CHARSET), size=int(rng.integers(2, 11))))
        else:
            word = str(int(rng.integers(0, 10 ** int(rng.integers(2, 7)))))
        if 2 <= len(word) <= 10 and split_of(word) == split:
            return word


def _background(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, float]:
    """A plain, gradient or textured background and its mean luminance."""
    base = rng.integers(0, 256, size=3).astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        img = np.broadcast_to(base, (height, width, 3)).copy()
    elif kind == 1:
        other = np.clip(base + rng.normal(0, 60, size=3), 0, 255)
        angle = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        img = base * (1 - t[..., None]) + other * t[..., None]
    else:
        noise = rng.normal(0, 1, size=(height // 8 + 1, width // 8 + 1)).astype(np.float32)
        blobs = np.asarray(Image.fromarray(noise).resize((width, height), Image.BICUBIC))
        grain = rng.normal(0, 6, size=(height, width)).astype(np.float32)
        img = base + (blobs * rng.uniform(8, 25) + grain)[..., None]
    img = np.clip(img, 0, 255)
    return img, float(img.mean())


def _text_colour(rng: np.random.Generator, luminance: float) -> np.ndarray:
    """A colour at least 110 grey levels away from the background's mean."""
    while True:
        colour = rng.integers(0, 256, size=3)
        if abs(float(colour.mean()) - luminance) >= 110:
            return colour.astype(np.float32)


def _stamp(text: str, font_path: str, size: int, angle: float):
    """The word's alpha mask, rotated by ``angle`` degrees, the ink's rotated rectangle in
    it, and where the unrotated ascender line's left end went (for aligning a line)."""
    font = _font(font_path, size)
    left, _, right, bottom = font.getbbox(text)
    margin = size // 2
    mask = Image.new("L", (right - left + 2 * margin, bottom + 2 * margin), 0)
    ImageDraw.Draw(mask).text((margin - left, margin), text, fill=255, font=font)
    ink = np.nonzero(np.asarray(mask))
    x0, x1 = ink[1].min(), ink[1].max() + 1
    y0, y1 = ink[0].min(), ink[0].max() + 1
    points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [margin, margin]], np.float64)
    rotated = mask.rotate(angle, resample=Image.BICUBIC, expand=True)
    # PIL turns the image counter-clockwise about its centre, then grows it to fit
    rad = math.radians(angle)
    turn = np.array([[math.cos(rad), math.sin(rad)], [-math.sin(rad), math.cos(rad)]])
    centre, new_centre = np.array([mask.width, mask.height]) / 2, np.array(rotated.size) / 2
    points = (points - centre) @ turn.T + new_centre
    return rotated, points[:4], points[4]


def _overlaps(box: Tuple[float, float, float, float], taken: List[Tuple[float, ...]]) -> bool:
    return any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3] for t in taken)


def render_page(rng: np.random.Generator, split: str = TRAIN,
                size: Optional[Tuple[int, int]] = None, lines: Optional[int] = None,
                font_sizes: Tuple[int, int] = (16, 36),
                words: Optional[Sequence[str]] = None) -> Page:
    """A page of words in lines.

    Args:
        rng: the only source of randomness (a seeded ``np.random.default_rng``).
        split: the vocabulary the words are drawn from (``TRAIN`` or ``HELD_OUT``).
        size: ``(width, height)``; random from 480 to 800 pixels each if not given.
        lines: the most lines to place (as many as fit if not given).
        font_sizes: the range of font sizes, in pixels.
        words: the words to place, in order, instead of random ones (``[]``: no text).
    """
    width, height = size or (int(rng.integers(480, 801)), int(rng.integers(480, 801)))
    canvas, luminance = _background(rng, width, height)
    fonts = font_files()
    queue = None if words is None else list(words)
    placed: List[Word] = []
    taken: List[Tuple[float, ...]] = []  # placed words' boxes, with a margin around them
    y, line_count = float(rng.uniform(4, 30)), 0
    while (lines is None or line_count < lines) and (queue is None or queue):
        size_px = int(rng.integers(font_sizes[0], font_sizes[1] + 1))
        if y + 1.4 * size_px > height:
            break
        font = fonts[int(rng.integers(len(fonts)))]
        colour = _text_colour(rng, luminance)
        angle = float(rng.uniform(-2, 2))
        x = float(rng.uniform(6, max(7, width * 0.2)))
        on_line = 0
        for _ in range(int(rng.integers(1, 7)) if queue is None else len(queue)):
            text = random_word(rng, split) if queue is None else queue[0]
            mask, quad, anchor = _stamp(text, font, size_px, angle + float(rng.uniform(-0.5, 0.5)))
            left, top = int(round(x - anchor[0])), int(round(y - anchor[1]))
            quad = quad + [left, top]
            pad = 0.3 * size_px
            box = (quad[:, 0].min() - pad, quad[:, 1].min() - pad, quad[:, 0].max() + pad,
                   quad[:, 1].max() + pad)
            if (left < 0 or top < 0 or left + mask.width > width or top + mask.height > height
                    or quad[:, 0].max() > width - 3 or quad[:, 1].max() > height - 3):
                break
            if _overlaps(box, taken):
                break
            alpha = np.asarray(mask, np.float32)[..., None] / 255.0
            region = canvas[top:top + mask.height, left:left + mask.width]
            region[:] = region * (1 - alpha) + colour * alpha
            placed.append(Word(text, tuple(round(float(v), 1) for v in quad.reshape(-1))))
            taken.append(box)
            on_line += 1
            if queue is not None:
                queue.pop(0)
            x = float(quad[:, 0].max()) + size_px * float(rng.uniform(0.8, 1.5))
        if on_line == 0 and queue is not None:
            break  # the next word fits nowhere
        line_count += on_line > 0
        y += size_px * float(rng.uniform(1.6, 2.1))
    image = Image.fromarray(canvas.astype(np.uint8))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    noise = rng.normal(0, float(rng.uniform(0, 5)), (height, width, 3))
    noisy = np.asarray(image, np.float32) + noise
    return Page(np.clip(noisy, 0, 255).astype(np.uint8), tuple(placed), line_count)


def word_crops(rng: np.random.Generator, page: Page) -> List[Tuple[np.ndarray, str]]:
    """Each word of a page cut out as end-to-end OCR cuts a detected box: the box, its
    corners moved by up to a tenth of its height (a detector's error), then MMOCR's
    ``crop_img`` padding (a fifth of the height above and below, two fifths each side)."""
    from mmocr.datasets.pipelines.crop import crop_img

    crops = []
    for word in page.words:
        quad = np.array(word.quad).reshape(4, 2)
        height = float(np.linalg.norm(quad[3] - quad[0]))
        jittered = quad + rng.uniform(-0.1, 0.1, size=(4, 2)) * height
        crops.append((crop_img(page.image, [float(v) for v in jittered.reshape(-1)]), word.text))
    return crops


def write_detection_set(folder: str, pages: Sequence[Page], name: str) -> str:
    """Pages as ``folder/name/NNNNN.jpg`` and a COCO-style ``folder/name.json`` that MMOCR's
    ``IcdarDataset`` reads; returns the json's path."""
    import json

    images_dir = os.path.join(folder, name)
    os.makedirs(images_dir, exist_ok=True)
    images, annotations = [], []
    for idx, page in enumerate(pages):
        file_name = f"{idx:05d}.jpg"
        page.save(os.path.join(images_dir, file_name))
        height, width = page.image.shape[:2]
        images.append(dict(id=idx, file_name=file_name, width=width, height=height))
        for word in page.words:
            xs, ys = word.quad[0::2], word.quad[1::2]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            annotations.append(dict(id=len(annotations), image_id=idx, category_id=1, iscrowd=0,
                                    bbox=bbox, area=bbox[2] * bbox[3],
                                    segmentation=[list(word.quad)], text=word.text))
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as out:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=1, name="text")]), out)
    return path


def write_recognition_set(folder: str, crops: Sequence[Tuple[np.ndarray, str]], name: str) -> str:
    """Crops as ``folder/name/NNNNNN.png`` and ``folder/name.txt`` lines ``FILE TEXT``, which
    MMOCR's ``OCRDataset`` reads with a ``LineStrParser``; returns the txt's path."""
    images_dir = os.path.join(folder, name)
    os.makedirs(images_dir, exist_ok=True)
    lines = []
    for idx, (crop, text) in enumerate(crops):
        file_name = f"{idx:06d}.png"
        Image.fromarray(crop).save(os.path.join(images_dir, file_name))
        lines.append(f"{file_name} {text}\n")
    path = os.path.join(folder, f"{name}.txt")
    with open(path, "w") as out:
        out.writelines(lines)
    return path


def matched_boxes(words: Sequence[Word], boxes: Sequence[Sequence[float]],
                  iou: float = 0.5) -> List[Optional[int]]:
    """For each word, the index of the box matched to it, or None: pairs of IoU >= ``iou``,
    best first, each word and each box used once."""
    from shapely.geometry import Polygon

    def polygon(points):
        shape = Polygon(np.array(points, np.float64).reshape(-1, 2))
        return shape if shape.is_valid else shape.buffer(0)

    truth, found = [polygon(w.quad) for w in words], [polygon(b) for b in boxes]
    pairs = []
    for i, gt in enumerate(truth):
        for j, box in enumerate(found):
            union = gt.union(box).area
            overlap = gt.intersection(box).area / union if union else 0.0
            if overlap >= iou:
                pairs.append((overlap, i, j))
    match: List[Optional[int]] = [None] * len(words)
    used = set()
    for _, i, j in sorted(pairs, reverse=True):
        if match[i] is None and j not in used:
            match[i] = j
            used.add(j)
    return match


def words_read(words: Sequence[Word], items: Sequence[dict], iou: float = 0.5) -> List[bool]:
    """For each word, whether the end-to-end answer item (``box``, ``text``) matched to it
    (``matched_boxes``) reads it exactly."""
    match = matched_boxes(words, [item["box"] for item in items], iou)
    return [j is not None and items[j]["text"] == word.text for word, j in zip(words, match)]


def demo_page() -> Page:
    """The page committed as demo/demo_page.jpg, which ``scripts/demo.sh`` reads."""
    return render_page(np.random.default_rng(7), HELD_OUT, size=(640, 480), font_sizes=(20, 30))


def benchmark_page() -> Page:
    """A page of 20 lines or more: the end-to-end benchmark's real work."""
    return render_page(np.random.default_rng(8), HELD_OUT, size=(640, 880), font_sizes=(16, 22))
