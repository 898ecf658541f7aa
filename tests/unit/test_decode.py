"""The one decoder: every payload form, every error, equality with mmcv's reader."""

import base64

import numpy as np
import pytest

from images import encode, jpeg_with_orientation, png16, png_header_only, text_image
from mmocr_serve.decode import IMREAD_FLAGS, decode_image, payload_bytes
from mmocr_serve.errors import (BadRequest, EmptyPayload, ImageTooLarge, InvalidBase64,
                                InvalidImage, ServeError)

JPEG = encode(text_image(), "JPEG", quality=95)


def test_raw_bytes_decode_to_bgr_uint8():
    img = decode_image(JPEG)
    assert img.dtype == np.uint8 and img.shape == (96, 320, 3)


@pytest.mark.parametrize("payload", [
    bytearray(JPEG),
    base64.b64encode(JPEG).decode(),
    "data:image/jpeg;base64," + base64.b64encode(JPEG).decode(),
    base64.b64encode(JPEG),  # base64 text as bytes (Triton's JSON requests)
    b"data:image/jpeg;base64," + base64.encodebytes(JPEG),  # with line breaks
    {"data": base64.b64encode(JPEG).decode()},
    {"image": base64.b64encode(JPEG).decode()},
    {"body": bytearray(JPEG)},
    {"body": {"data": base64.b64encode(JPEG).decode()}},
    {"body": {"image": base64.b64encode(JPEG).decode()}},  # a JSON body's "image" key
    {"upload": bytearray(JPEG)},  # multipart field of any name
])
def test_every_payload_form_gives_the_same_image(payload):
    assert np.array_equal(decode_image(payload), decode_image(JPEG))


@pytest.mark.parametrize("fmt,kwargs", [("PNG", {}), ("BMP", {}), ("TIFF", {}),
                                        ("WEBP", {"lossless": True})])
def test_lossless_formats_decode_to_the_same_pixels(fmt, kwargs):
    img = text_image()
    decoded = decode_image(encode(img, fmt, **kwargs))
    assert np.array_equal(decoded[:, :, ::-1], np.asarray(img))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_colour_modes_become_three_channels(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(encode(text_image(mode=mode), fmt)).shape == (96, 320, 3)


def test_sixteen_bit_png_becomes_eight_bit():
    img = decode_image(png16())
    assert img.dtype == np.uint8 and img.shape == (32, 64, 3)


def test_grayscale_flag_gives_two_dimensions():
    assert decode_image(JPEG, flag="grayscale").shape == (96, 320)


@pytest.mark.parametrize("flag", sorted(IMREAD_FLAGS))
def test_equals_mmcv_imfrombytes_for_every_flag(flag):
    mmcv = pytest.importorskip("mmcv")
    data = jpeg_with_orientation(text_image(), orientation=6)
    assert np.array_equal(decode_image(data, flag=flag), mmcv.imfrombytes(data, flag=flag))


def test_exif_orientation_applied_or_ignored_by_flag():
    data = jpeg_with_orientation(text_image(), orientation=6)  # rotate 90 degrees
    assert decode_image(data, flag="color").shape[:2] == (320, 96)
    assert decode_image(data, flag="color_ignore_orientation").shape[:2] == (96, 320)


def test_rgb_channel_order():
    assert np.array_equal(decode_image(JPEG, channel_order="rgb"), decode_image(JPEG)[:, :, ::-1])


@pytest.mark.parametrize("payload,error", [
    (b"", EmptyPayload),
    (bytearray(), EmptyPayload),
    (None, EmptyPayload),
    ({}, EmptyPayload),
    (b"x", InvalidImage),
    (b"hello, this is a text file\n" * 20, InvalidImage),
    (b"<html><body>not an image</body></html>", InvalidImage),
    (np.random.default_rng(0).bytes(4096), InvalidImage),
    (JPEG[: len(JPEG) // 2], InvalidImage),
    (encode(text_image(), "PNG")[:-20], InvalidImage),
    ("this is not base64!", InvalidBase64),
    (b"plain words and spaces", InvalidImage),  # bytes: base64 text has no spaces
    (b"bm90IGFuIGltYWdl", InvalidImage),  # base64 text of bytes that are not an image
    ({"data": "%%%"}, InvalidBase64),
    ({"data": 12}, BadRequest),
    ({"body": {"text": "no image field"}}, BadRequest),
    ({"body": {"img": base64.b64encode(JPEG).decode()}}, BadRequest),  # JSON: data or image
    ({"name": "only a text field"}, BadRequest),
    (png_header_only(50000, 50000), ImageTooLarge),
])
def test_bad_payloads_raise_a_named_error(payload, error):
    with pytest.raises(error) as info:
        decode_image(payload)
    body = info.value.to_dict()
    assert body["code"] == error.status and body["type"] == error.kind
    assert body["message"]
    assert 400 <= body["code"] < 500


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageTooLarge, match="320x96"):
        decode_image(JPEG, max_pixels=320 * 96 - 1)
    assert decode_image(JPEG, max_pixels=320 * 96).shape == (96, 320, 3)


def test_errors_name_what_was_expected():
    with pytest.raises(ServeError, match="JPEG, PNG"):
        decode_image(b"garbage bytes")


def test_payload_bytes_prefers_body_field():
    assert payload_bytes({"body": b"abc", "other": b"zzz"}) == b"abc"
