"""The one decoder: turns a request payload into the image array MMOCR's pipeline expects.

A payload is raw image bytes, base64 text (optionally a ``data:`` URL, as text or as
bytes: no image file is all base64 characters), a JSON object
with a ``data`` (or ``image``) field, or a TorchServe request row (``{"body": ...}`` or
multipart fields of any name). Decoding uses OpenCV with the same flags as mmcv's
``imfrombytes``, so an image decoded here equals what the model's ``LoadImageFromFile``
step reads from a file (EXIF orientation included: ``color_ignore_orientation`` ignores
it, ``color`` applies it).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from typing import Any, Dict, Mapping, Tuple

import cv2
import numpy as np

from .errors import BadRequest, EmptyPayload, ImageTooLarge, InvalidBase64, InvalidImage

DEFAULT_MAX_PIXELS = 40_000_000

# mmcv.image.io.imread_flags, spelled out so that decoding does not import mmcv/torch.
IMREAD_FLAGS = {
    "color": cv2.IMREAD_COLOR,
    "grayscale": cv2.IMREAD_GRAYSCALE,
    "unchanged": cv2.IMREAD_UNCHANGED,
    "color_ignore_orientation": cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_COLOR,
    "grayscale_ignore_orientation": cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_GRAYSCALE,
}

# Bytes that may be base64 text (Triton's JSON requests carry BYTES elements as text): no
# image format starts with these characters alone.
BASE64_BYTES = re.compile(rb"\s*(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/=\r\n]+\s*")
IMAGE_FIELDS = ("body", "data", "image")
ROUTING_FIELDS = ("model_name",)  # TorchServe's own query parameter on /invocations
EXPECTED = (
    "expected image bytes (JPEG, PNG, BMP, TIFF or WebP) as the request body, "
    "a multipart file field, or JSON {\"data\": \"<base64>\"} (or \"image\")"
)


def decode_image(
    payload: Any,
    flag: str = "color",
    channel_order: str = "bgr",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode one request payload into an image array.

    Args:
        payload: bytes, bytearray, base64 str, or a mapping (JSON body or request row).
        flag: an mmcv ``imfrombytes`` flag, taken from the model's loading step.
        channel_order: ``"bgr"`` (mmcv's default) or ``"rgb"``.
        max_pixels: largest width x height accepted.

    Returns:
        ``uint8`` array, H x W x 3 for colour flags, H x W for grayscale flags.

    Raises:
        EmptyPayload, InvalidBase64, BadRequest, InvalidImage (400); ImageTooLarge (413).
    """
    data = payload_bytes(payload)
    check_dimensions(data, max_pixels)
    check_complete(data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), IMREAD_FLAGS[flag])
    if img is None or img.size == 0:
        raise InvalidImage(f"the payload could not be decoded as an image: {EXPECTED}")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise ImageTooLarge(_too_large_message(img.shape[1], img.shape[0], max_pixels))
    if img.ndim == 3 and channel_order == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def payload_bytes(payload: Any) -> bytes:
    """Find the image bytes in a payload (see the module docstring for the forms)."""
    if isinstance(payload, Mapping):
        return payload_bytes(split_request(payload)[0])
    if isinstance(payload, (bytes, bytearray, memoryview)):
        data = bytes(payload)
        if BASE64_BYTES.fullmatch(data):  # valid base64 text, or else the bytes as sent
            try:
                data = _b64decode(data.decode("ascii"))
            except InvalidBase64:
                pass
    elif isinstance(payload, str):
        data = _b64decode(payload)
    elif payload is None:
        raise EmptyPayload(f"the request is empty: {EXPECTED}")
    else:
        raise BadRequest(
            f"the image field holds a {type(payload).__name__}, not bytes or base64 text: "
            f"{EXPECTED}"
        )
    if not data:
        raise EmptyPayload(f"the request body is empty: {EXPECTED}")
    return data


def split_request(row: Any) -> Tuple[Any, Dict[str, Any]]:
    """The one rule for which field of a request holds the image: ``(image, raw options)``.

    The image is the first of the ``body``, ``data`` and ``image`` fields, or else (a
    multipart upload under another name) the largest bytes field. A JSON body is split the
    same way; its other keys, and every other field but TorchServe's routing ones, are
    options. Anything but a mapping is the image itself.

    Raises:
        EmptyPayload: no fields at all; BadRequest: fields, but none holds an image.
    """
    if not isinstance(row, Mapping):
        return row, {}
    key = next((k for k in IMAGE_FIELDS if k in row), None)
    if key is None:
        files = [k for k, v in row.items() if isinstance(v, (bytes, bytearray))]
        key = max(files, key=lambda k: len(row[k]), default=None)
    if key is None:
        if not row:
            raise EmptyPayload(f"the request is empty: {EXPECTED}")
        raise BadRequest(f"no image found in fields {sorted(map(str, row))}: {EXPECTED}")
    options = {k: v for k, v in row.items() if k != key and k not in ROUTING_FIELDS}
    image = row[key]
    if isinstance(image, Mapping):  # a JSON body
        image, inner = split_request(image)
        options.update(inner)
    return image, options


def _b64decode(text: str) -> bytes:
    text = text.strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidBase64(f"the image field is not valid base64 ({err}): {EXPECTED}") from None


def check_dimensions(data: bytes, max_pixels: int) -> None:
    """Refuse an image whose header declares too many pixels, before decoding it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"the image declares more than {max_pixels} pixels") from None
    except Exception:  # not a format PIL reads: OpenCV decides below
        return
    if width * height > max_pixels:
        raise ImageTooLarge(_too_large_message(width, height, max_pixels))


def check_complete(data: bytes) -> None:
    """Refuse JPEG and PNG streams that lack their end marker (truncated uploads).

    OpenCV decodes a truncated JPEG into a partly grey image without an error; serving a
    result for it would hide a broken upload.
    """
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in data[-4096:]:
        raise InvalidImage("the JPEG data is truncated (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise InvalidImage("the PNG data is truncated (no IEND chunk)")


def _too_large_message(width: int, height: int, max_pixels: int) -> str:
    return (
        f"the image is {width}x{height} = {width * height} pixels; "
        f"at most {max_pixels} are accepted"
    )
