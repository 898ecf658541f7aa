"""A corpus of hostile and odd requests, generated here (nothing is downloaded).

Each case is the keyword arguments for ``requests.post`` and the statuses it may get:
4xx for what is not an image the model can take, 200 for odd but valid images.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Dict, Tuple

import numpy as np
from PIL import Image

from images import encode, png_header_only, text_image

OCTET = {"Content-Type": "application/octet-stream"}
JSON = {"Content-Type": "application/json"}


def _raw(data: bytes) -> dict:
    return {"data": data, "headers": OCTET}


def _json(obj) -> dict:
    return {"data": json.dumps(obj).encode(), "headers": JSON}


def corrupt_huffman_jpeg() -> bytes:
    """A JPEG whose Huffman table (DHT segment) is overwritten with 0xFF bytes."""
    data = bytearray(encode(text_image("huffman", (160, 64)), "JPEG", quality=90))
    start = data.index(b"\xff\xc4") + 4  # marker, 2-byte length, then the table
    data[start + 1:start + 29] = b"\xff" * 28
    return bytes(data)


def animated(fmt: str) -> bytes:
    frames = [text_image(f"frame {i}", (160, 64)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def tiff(mode: str) -> bytes:
    ramp = np.linspace(0, 1, 96 * 48, dtype=np.float32).reshape(48, 96)
    arr = (ramp * 65535).astype(np.uint16) if mode == "I;16" else ramp
    return encode(Image.fromarray(arr), "TIFF")  # uint16 -> I;16, float32 -> F


def hostile_corpus(request_limit: int) -> Dict[str, Tuple[dict, Tuple[int, ...]]]:
    """name -> (requests.post keyword arguments, the statuses allowed)."""
    jpeg = encode(text_image("truncated", (320, 96)), "JPEG", quality=90)
    rng = np.random.default_rng(7)
    refused, odd_image = (400,), (200, 400, 422)
    return {
        "zero bytes": (_raw(b""), refused),
        "one byte": (_raw(b"\xff"), refused),
        "random bytes": (_raw(rng.bytes(4096)), refused),
        "text file": (_raw(b"just some notes, not an image\n" * 20), refused),
        "HTML": (_raw(b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"),
                 refused),
        "PNG declaring 50000x50000": (_raw(png_header_only(50000, 50000)), (413,)),
        "truncated JPEG": (_raw(jpeg[:len(jpeg) // 2]), refused),
        "JPEG with a corrupt Huffman table": (_raw(corrupt_huffman_jpeg()), odd_image),
        "1x1 image": (_raw(encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")), odd_image),
        "1x10000 strip": (_raw(encode(Image.new("RGB", (1, 10000), (250, 250, 250)), "PNG")),
                          (422,)),
        "16-bit TIFF": (_raw(tiff("I;16")), odd_image),
        "float TIFF": (_raw(tiff("F")), odd_image),
        "CMYK JPEG": (_raw(encode(text_image("cmyk", (160, 64)).convert("CMYK"), "JPEG")),
                      odd_image),
        "animated GIF": (_raw(animated("GIF")), odd_image),
        "animated WebP": (_raw(animated("WEBP")), odd_image),
        "invalid base64": (_json({"data": "%%% not base64 %%%"}), refused),
        "JSON without the field": (_json({"picture": base64.b64encode(jpeg).decode()}), refused),
        "JSON with a number for the image": (_json({"data": 12345}), refused),
        "multipart with no file": ({"files": {"score_thr": (None, "0.5")}}, refused),
        "body over the request limit": (_raw(b"\0" * (request_limit + 1024)), (413,)),
    }
