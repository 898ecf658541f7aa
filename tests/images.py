"""Images the tests make themselves: rendered pages and words, encoded in any format."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def text_image(text: str = "mmocr serve 2026", size=(320, 96), mode: str = "RGB") -> Image.Image:
    """Dark text on a light background, large enough for a detector to see."""
    img = Image.new("RGB", size, (235, 230, 220))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(12, size[1] // 3))
    draw.text((size[0] // 16, size[1] // 3), text, fill=(20, 20, 30), font=font)
    return img.convert(mode)


def rendered_page(seed: int, size=(640, 360)):
    """A page of scattered lines of held-out words (``mmocr_serve_tools.synth``), in sizes
    the demo models read."""
    from mmocr_serve_tools import synth

    return synth.render_page(np.random.default_rng(seed), synth.HELD_OUT, size=size,
                             font_sizes=(20, 30), layout="lines")


def rendered_word(seed: int, text: str) -> np.ndarray:
    """``text`` cut from a rendered page as end-to-end OCR cuts a detected word (RGB)."""
    from mmocr_serve_tools import synth

    rng = np.random.default_rng(seed)
    for _ in range(50):  # a word drawn too near the top or left edge is dropped: draw again
        page = synth.render_page(rng, size=(60 + 24 * len(text), 90), font_sizes=(26, 30),
                                 words=[text])
        if page.words:
            return synth.word_crops(rng, page)[0][0]
    raise AssertionError(f"{text!r} did not fit on its page")


def encode(img, fmt: str = "JPEG", **kwargs) -> bytes:
    """An image (PIL, or an RGB or grayscale array) encoded as ``fmt``."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png16(width: int = 64, height: int = 32) -> bytes:
    """A 16-bit grayscale PNG (OpenCV reads 16 bits; PIL mode I;16)."""
    arr = (np.arange(width * height, dtype=np.uint16).reshape(height, width) * 37)
    return encode(Image.fromarray(arr), "PNG")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_with_orientation(img: Image.Image, orientation: int = 6, quality: int = 95) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif.tobytes(), quality=quality)
