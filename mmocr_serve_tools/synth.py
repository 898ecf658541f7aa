"""Rendered text with known ground truth: the demo models' training and held-out data.

A page is words in lines (``DICT90`` characters, several fonts, sizes and colours, slight
rotation, blur and noise) on a plain, gradient or textured background; each word has its
quadrilateral and text. Word crops for the recognizer are cut from such pages with MMOCR's
own ``crop_img`` padding, as end-to-end OCR cuts them: around a jittered box, or around
the box a detector found.
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

# What the demo recognizer reads: MMOCR's DICT90 (digits, both cases, ASCII punctuation)
LOWER_DIGITS = string.digits + string.ascii_lowercase
CHARSET = LOWER_DIGITS + string.ascii_uppercase + "!\"#$%&'()*+,-./:;<=>?@[\\]_`~"
MAX_WORD = 16  # longer words are left out of the text: the recognizer reads 40 columns
LICENCES = ("Apache-2.0", "GPL-3", "LGPL-2.1", "MPL-2.0", "Artistic", "GFDL-1.3")
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


# Debian's font packages (scripts/install.sh installs them) beside matplotlib's own. The
# held-out families are the ones evaluation renders with: training never sees them.
FONT_DIRS = ("/usr/share/fonts",)
HELD_OUT_FAMILIES = ("Liberation", "Caladea", "Lato")
# Not text faces, or too thin or too unlike print to read: symbols, dingbats, script,
# small capitals (whose lower case is upper case), display and initial capitals.
_NOT_TEXT = ("D050000L", "Z003", "StandardSymbols", "glyphicons", "Math", "Smallcaps",
             "Thin", "Hairline", "ExtraLight", "LinBiolinum_K", "LinLibertine_DR",
             "LinLibertine_I.", "Display")


@lru_cache(maxsize=2)
def font_files(split: str = TRAIN) -> Tuple[str, ...]:
    """TrueType and OpenType text fonts of ``split``: the training families (matplotlib's
    DejaVu and STIX, and Debian's), or the held-out ones (``HELD_OUT_FAMILIES``)."""
    import matplotlib

    ttf = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    names = glob.glob(os.path.join(ttf, "DejaVu*.ttf")) + glob.glob(os.path.join(ttf, "STIXGeneral*.ttf"))
    for folder in FONT_DIRS:
        names += glob.glob(os.path.join(folder, "**", "*.[ot]tf"), recursive=True)
    text_faces = [n for n in names if not any(s in os.path.basename(n) for s in _NOT_TEXT)]
    held_out = lambda n: os.path.basename(n).startswith(HELD_OUT_FAMILIES)  # noqa: E731
    return tuple(sorted(n for n in text_faces if held_out(n) == (split == HELD_OUT)))


@lru_cache(maxsize=2)
def corpus(split: str = TRAIN) -> Tuple[str, ...]:
    """Running English text, word by word: the training text is the docstrings of Python's
    own standard library, the held-out text the licences in /usr/share/common-licenses.
    Words with a character outside ``CHARSET`` or longer than ``MAX_WORD`` are left out."""
    import ast
    import sysconfig

    texts = []
    if split == HELD_OUT:
        for name in LICENCES:
            with open(os.path.join("/usr/share/common-licenses", name), encoding="utf-8") as f:
                texts.append(f.read())
    else:
        for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
            try:
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, UnicodeDecodeError):
                continue
            texts += [ast.get_docstring(node) or "" for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))]
    allowed = set(CHARSET)
    return tuple(w for w in " ".join(texts).split() if len(w) <= MAX_WORD and set(w) <= allowed)


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def split_of(word: str) -> str:
    """Which vocabulary a random string belongs to: one in eight is held out, by its hash."""
    return HELD_OUT if zlib.crc32(word.encode()) % 8 == 0 else TRAIN


def random_word(rng: np.random.Generator, split: str = TRAIN) -> str:
    """A random string of ``split``'s vocabulary: pronounceable, any characters of
    ``CHARSET``, or a number, in lower, title or upper case."""
    while True:
        kind = rng.random()
        if kind < 0.45:
            syllables = int(rng.integers(1, 5))
            word = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS))
                           + (rng.choice(list(_CONSONANTS)) if rng.random() < 0.3 else "")
                           for _ in range(syllables))
            word = [word, word.title(), word.upper()][int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
            if rng.random() < 0.2:
                word += str(rng.choice(list(".,;:!?)")))
        elif kind < 0.75:
            alphabet = LOWER_DIGITS if rng.random() < 0.4 else CHARSET
            word = "".join(rng.choice(list(alphabet), size=int(rng.integers(2, 11))))
        else:
            word = str(int(rng.integers(0, 10 ** int(rng.integers(1, 7)))))
            word = rng.choice([word, word + ".", f"({word})", f"{word}%", f"${word}",
                               f"{word[:2]}.{word[2:]}" if len(word) > 2 else word])
        if 1 <= len(word) <= MAX_WORD and split_of(word) == split:
            return word


def text_run(rng: np.random.Generator, split: str = TRAIN, count: int = 400) -> List[str]:
    """``count`` words of running text from ``split``'s corpus, from a random place; in
    training, one word in ten is a random string instead."""
    words = corpus(split)
    start = int(rng.integers(0, len(words) - count))
    run = list(words[start:start + count])
    if split == TRAIN:
        run = [random_word(rng) if rng.random() < 0.1 else w for w in run]
    return run


def _busy_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A plain, gradient or textured background of any colour."""
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
    return np.clip(img, 0, 255)


def _paper(rng: np.random.Generator, width: int, height: int, clean: bool) -> np.ndarray:
    """A document's background: white, off-white, light grey or a light colour."""
    if clean:
        colour = np.full(3, rng.uniform(245, 255))
    else:
        colour = [np.full(3, rng.uniform(238, 255)),  # white
                  rng.uniform([240, 232, 210], [255, 248, 235]),  # off-white
                  np.full(3, rng.uniform(195, 235)),  # light grey
                  rng.uniform(175, 255, size=3)][int(rng.integers(4))]  # a light colour
    return np.broadcast_to(np.asarray(colour, np.float32), (height, width, 3)).copy()


def _text_colour(rng: np.random.Generator, luminance: float) -> np.ndarray:
    """A colour at least 110 grey levels away from the background's mean."""
    while True:
        colour = rng.integers(0, 256, size=3)
        if abs(float(colour.mean()) - luminance) >= 110:
            return colour.astype(np.float32)


def _ink(rng: np.random.Generator, clean: bool) -> np.ndarray:
    """Printing ink: black or dark grey, sometimes dark blue, red or green."""
    if clean:
        return np.full(3, rng.uniform(0, 20), np.float32)
    if rng.random() < 0.8:
        return np.full(3, rng.uniform(0, 70), np.float32)
    return rng.uniform(0, 40, size=3).astype(np.float32) + np.eye(3)[int(rng.integers(3))] * 80


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
    return any(_bounds_meet(box, t) for t in taken)


def _bounds_meet(a: Tuple[float, ...], b: Tuple[float, ...]) -> bool:
    """Whether two ``(x0, y0, x1, y1)`` rectangles overlap."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _page_size(rng: np.random.Generator) -> Tuple[int, int]:
    """600 to 1,600 pixels wide, a little wider or taller than a printed page."""
    width = int(rng.integers(600, 1601))
    return width, int(np.clip(width * rng.uniform(0.6, 1.45), 400, 1600))


def render_page(rng: np.random.Generator, split: str = TRAIN,
                size: Optional[Tuple[int, int]] = None, lines: Optional[int] = None,
                font_sizes: Tuple[int, int] = (14, 40),
                words: Optional[Sequence[str]] = None, layout: Optional[str] = None,
                clean: bool = False, fonts: Optional[Sequence[str]] = None) -> Page:
    """A page of text: paragraphs of running text on paper, or scattered lines of words
    on any background.

    Args:
        rng: the only source of randomness (a seeded ``np.random.default_rng``).
        split: the text and fonts drawn from (``TRAIN`` or ``HELD_OUT``).
        size: ``(width, height)``; random (``_page_size``) if not given.
        lines: the most lines to place (as many as fit if not given).
        font_sizes: the range of font sizes, in pixels.
        words: the words to place, in order, instead of random ones (``[]``: no text).
        layout: ``"paragraphs"`` or ``"lines"``; random if not given (``lines`` when
            ``words`` are given).
        clean: black on white, upright, sharp and without noise (a paragraphs layout).
        fonts: the font files to draw from, instead of ``font_files(split)``.
    """
    width, height = size or _page_size(rng)
    if layout is None:
        layout = "paragraphs" if clean or (words is None and rng.random() < 0.6) else "lines"
    fonts = tuple(fonts or font_files(split))
    if layout == "paragraphs":
        canvas = _paper(rng, width, height, clean)
        placed, line_count = _paragraphs(rng, canvas, split, font_sizes, fonts, lines, words,
                                         _ink(rng, clean))
        image = Image.fromarray(canvas.astype(np.uint8))
        if not clean:
            image, placed = _tilt(rng, image, placed, tuple(int(v) for v in canvas[0, 0]))
    else:
        canvas = _busy_background(rng, width, height) if rng.random() < 0.7 or words is not None \
            else _paper(rng, width, height, False)
        placed, line_count = _lines(rng, canvas, split, font_sizes, fonts, lines, words)
        image = Image.fromarray(canvas.astype(np.uint8))
    if clean:
        return Page(np.asarray(image), tuple(placed), line_count)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    noise = rng.normal(0, float(rng.uniform(0, 5)), (height, width, 3))
    noisy = Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8))
    if rng.random() < 0.4:
        noisy = _jpeg(noisy, int(rng.integers(40, 90)))
    return Page(np.asarray(noisy), tuple(placed), line_count)


def _paragraphs(rng, canvas: np.ndarray, split: str, font_sizes: Tuple[int, int],
                fonts: Sequence[str], lines: Optional[int], words: Optional[Sequence[str]],
                colour: np.ndarray) -> Tuple[List[Word], int]:
    """Running text set in paragraphs, one font and size each, ragged right; drawn into
    ``canvas`` in one colour. Returns the words placed and the number of lines."""
    height, width = canvas.shape[:2]
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    queue = list(words) if words is not None else text_run(rng, split, 4000)
    left = float(rng.uniform(8, max(9, width * 0.1)))
    right = width - float(rng.uniform(8, max(9, width * 0.1)))
    placed: List[Word] = []
    y, line_count = float(rng.uniform(6, 50)), 0
    while queue and (lines is None or line_count < lines):
        size_px = int(rng.integers(font_sizes[0], font_sizes[1] + 1))
        font = _font(fonts[int(rng.integers(len(fonts)))], size_px)
        space = font.getlength(" ") * float(rng.uniform(0.9, 1.5))
        leading = size_px * float(rng.uniform(1.15, 1.7))
        for row in range(int(rng.integers(2, 12)) if words is None else len(queue)):
            if y + 1.3 * size_px > height - 4 or not queue or (lines and line_count >= lines):
                break
            x = left + (size_px * 1.5 if row == 0 and rng.random() < 0.5 else 0)
            on_line = 0
            while queue:
                x0, y0, x1, y1 = font.getbbox(queue[0])
                if x + x1 > right and on_line:
                    break
                if x + x1 > width - 3:  # a word longer than the whole line
                    queue.pop(0)
                    continue
                draw.text((x, y), queue[0], fill=255, font=font)
                placed.append(Word(queue.pop(0), (x + x0, y + y0, x + x1, y + y0, x + x1, y + y1,
                                                  x + x0, y + y1)))
                x += x1 + space
                on_line += 1
            line_count += 1
            y += leading
        y += leading * float(rng.uniform(0.2, 1.2))  # between paragraphs
        if words is None and rng.random() < 0.3:
            del queue[:int(rng.integers(20, 200))]  # the next paragraph is from elsewhere
    alpha = np.asarray(mask, np.float32)[..., None] / 255.0
    canvas[:] = canvas * (1 - alpha) + colour * alpha
    return [Word(w.text, tuple(round(float(v), 1) for v in w.quad)) for w in placed], line_count


def _tilt(rng, image: Image.Image, words: List[Word], fill: Tuple[int, ...]):
    """The page turned by up to 2 degrees about its centre, and the words that stay on it."""
    angle = float(rng.uniform(-2, 2))
    width, height = image.size
    turned = image.rotate(angle, resample=Image.BICUBIC, fillcolor=fill)
    rad = math.radians(angle)
    turn = np.array([[math.cos(rad), math.sin(rad)], [-math.sin(rad), math.cos(rad)]])
    centre = np.array([width, height]) / 2
    kept = []
    for word in words:
        quad = (np.array(word.quad).reshape(4, 2) - centre) @ turn.T + centre
        if quad.min() >= 0 and quad[:, 0].max() < width - 1 and quad[:, 1].max() < height - 1:
            kept.append(Word(word.text, tuple(round(float(v), 1) for v in quad.reshape(-1))))
    return turned, kept


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    import io

    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _lines(rng, canvas: np.ndarray, split: str, font_sizes: Tuple[int, int],
           fonts: Sequence[str], lines: Optional[int],
           words: Optional[Sequence[str]]) -> Tuple[List[Word], int]:
    """Lines of one to six words (each line its colour, font, size and slant) at random
    places, drawn into ``canvas``. Returns the words placed and the number of lines."""
    height, width = canvas.shape[:2]
    luminance = float(canvas.mean())
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
            if queue is None:  # held out: ordinary words alone, as a page holds them
                text = random_word(rng) if split == TRAIN and rng.random() < 0.5 \
                    else text_run(rng, split, 1)[0]
            else:
                text = queue[0]
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
    return placed, line_count


def word_crops(rng: np.random.Generator, page: Page,
               limit: Optional[int] = None) -> List[Tuple[np.ndarray, str]]:
    """Each word of a page (or ``limit`` of them, at random) cut out as end-to-end OCR cuts
    a detected box: the box, its corners moved by up to a tenth of its height (a
    detector's error), then MMOCR's ``crop_img`` padding (a fifth of the height above and
    below, two fifths each side)."""
    from mmocr.datasets.pipelines.crop import crop_img

    crops = []
    for word in _some(rng, page.words, limit):
        quad = np.array(word.quad).reshape(4, 2)
        height = float(np.linalg.norm(quad[3] - quad[0]))
        jittered = quad + rng.uniform(-0.1, 0.1, size=(4, 2)) * height
        crops.append((crop_img(page.image, [float(v) for v in jittered.reshape(-1)]), word.text))
    return crops


def detected_crops(rng: np.random.Generator, page: Page, boxes: Sequence[Sequence[float]],
                   limit: Optional[int] = None) -> List[Tuple[np.ndarray, str]]:
    """The words of a page that a detector found (``matched_boxes``), or ``limit`` of them
    at random, each cut out by the detector's own box as end-to-end OCR cuts it: a
    detector's boxes err in its own ways (short of a descender, into a neighbour's letter),
    which a recognizer trained on them learns to read through."""
    from mmocr.datasets.pipelines.crop import crop_img

    from mmocr_serve.engine import readtext_crop_box

    quads = [readtext_crop_box([float(v) for v in box[:-1]]) for box in boxes]  # no score
    found = [(word, quads[j]) for word, j in zip(page.words, matched_boxes(page.words, quads))
             if j is not None]
    return [(crop_img(page.image, quad), word.text)
            for word, quad in _some(rng, found, limit)]


def _some(rng: np.random.Generator, items: Sequence, limit: Optional[int]) -> Sequence:
    """``limit`` of the items at random, in their order; all of them when there are fewer."""
    if limit is None or len(items) <= limit:
        return items
    return [items[i] for i in sorted(rng.choice(len(items), limit, replace=False))]


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
            if not _bounds_meet(gt.bounds, box.bounds):  # a page holds hundreds of words
                continue
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


# The demo reads section 2 of the Apache License 2.0 (/usr/share/common-licenses/Apache-2.0)
DEMO_TEXT = (
    "Grant of Copyright License. Subject to the terms and conditions of this License, each "
    "Contributor hereby grants to You a perpetual, worldwide, non-exclusive, no-charge, "
    "royalty-free, irrevocable copyright license to reproduce, prepare Derivative Works of, "
    "publicly display, publicly perform, sublicense, and distribute the Work and such "
    "Derivative Works in Source or Object form.")


def demo_page() -> Page:
    """The page committed as demo/demo_page.jpg, which ``scripts/demo.sh`` reads: a
    paragraph of a licence, black on white, in Liberation Serif (a held-out family)."""
    font = next(f for f in font_files(HELD_OUT) if f.endswith("LiberationSerif-Regular.ttf"))
    return render_page(np.random.default_rng(7), HELD_OUT, size=(900, 200), font_sizes=(24, 24),
                       words=DEMO_TEXT.split(), layout="paragraphs", clean=True, fonts=[font])


def benchmark_page() -> Page:
    """A page of 20 lines or more: the end-to-end benchmark's real work."""
    return render_page(np.random.default_rng(8), HELD_OUT, size=(640, 880), font_sizes=(16, 22),
                       layout="lines")
