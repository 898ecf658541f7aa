"""The project's exceptions, each carrying the HTTP status it stands for."""

from __future__ import annotations


class ServeError(Exception):
    """Base of every error this project raises on purpose.

    ``status`` is the HTTP status a server answers with; ``kind`` is the short name put
    in the JSON error body as ``type``.
    """

    status = 500
    kind = "InternalError"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        """The JSON error body: ``{"code": status, "type": kind, "message": ...}``."""
        return {"code": self.status, "type": self.kind, "message": self.message}


def check_choice(label: str, value, allowed, error: type = ServeError) -> None:
    """Raise ``error`` naming ``label``, the allowed values and ``value``, unless ``value``
    is one of ``allowed``."""
    if value not in allowed:
        raise error(f"{label} must be one of {', '.join(allowed)}, not {value!r}")


class BadRequest(ServeError):
    """The request is malformed: wrong shape of JSON, multipart without a file."""

    status = 400
    kind = "BadRequest"


class EmptyPayload(BadRequest):
    """The request carried no bytes at all."""

    kind = "EmptyPayload"


class InvalidImage(BadRequest):
    """The bytes are not an image that can be decoded (or are truncated)."""

    kind = "InvalidImage"


class InvalidBase64(BadRequest):
    """A base64 field did not decode."""

    kind = "InvalidBase64"


class ImageTooLarge(ServeError):
    """The image declares more pixels than the server accepts."""

    status = 413
    kind = "ImageTooLarge"


class InvalidOption(BadRequest):
    """A request option is unknown or has a bad value."""

    kind = "InvalidOption"


class UnprocessableImage(ServeError):
    """A decoded image the model's own preprocessing cannot take (say 1 x 10000 pixels)."""

    status = 422
    kind = "UnprocessableImage"


class InferenceError(ServeError):
    """The model failed on an input that was decoded correctly."""

    status = 500
    kind = "InferenceError"


class ModelLoadError(ServeError):
    """A model archive or directory cannot be turned into a working model."""

    status = 500
    kind = "ModelLoadError"


class ConversionError(ServeError):
    """The converter refuses its inputs; the message says what was expected."""

    status = 400
    kind = "ConversionError"


class UntrustedCheckpoint(ConversionError):
    """A checkpoint needs arbitrary unpickling, which is refused unless trusted."""

    kind = "UntrustedCheckpoint"
