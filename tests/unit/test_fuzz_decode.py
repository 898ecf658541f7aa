"""Property-based fuzzing of the one decoder (hypothesis, bounded for CI).

Whatever the payload, ``decode_image`` returns a uint8 image within the pixel limit or
raises one of the project's errors with a 4xx status; nothing else escapes.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from images import encode, text_image
from mmocr_serve.decode import decode_image
from mmocr_serve.errors import ServeError

MAX_PIXELS = 1_000_000
SEEDS = [encode(text_image("fuzz", (64, 32)), fmt) for fmt in ("PNG", "JPEG", "BMP", "WEBP",
                                                                   "TIFF", "GIF")]
FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated_images(draw) -> bytes:
    """A valid image with bytes flipped, cut or inserted: where decoders break."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 64))]
            if not data:
                break
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
    return bytes(data)


def payloads():
    raw = st.one_of(st.binary(max_size=512), mutated_images())
    as_b64 = raw.map(lambda b: base64.b64encode(b).decode())
    text = st.text(max_size=64)
    json_body = st.dictionaries(st.sampled_from(["data", "image", "other"]),
                                st.one_of(as_b64, text, st.integers(), st.none(), st.lists(
                                    st.integers(), max_size=3)), max_size=3)
    return st.one_of(raw, as_b64, text, json_body,
                     json_body.map(lambda d: {"body": json.dumps(d).encode()}),
                     raw.map(lambda b: {"body": bytearray(b)}),
                     st.dictionaries(st.text(max_size=8), raw, max_size=3))


def check(payload, flag: str) -> None:
    try:
        img = decode_image(payload, flag=flag, max_pixels=MAX_PIXELS)
    except ServeError as err:
        assert 400 <= err.status < 500 and err.message
        return
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8
    assert img.ndim == (2 if flag == "grayscale" else 3)
    assert 0 < img.shape[0] * img.shape[1] <= MAX_PIXELS


@FUZZ
@given(payloads())
def test_decoder_answers_every_payload_with_an_image_or_a_4xx(payload):
    check(payload, "color")


@FUZZ
@given(mutated_images())
def test_decoder_on_mutated_images_grayscale(payload):
    check(payload, "grayscale")
