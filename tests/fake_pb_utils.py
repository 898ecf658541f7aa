"""A stand-in for Triton's ``triton_python_backend_utils``, what ``triton_model.py`` uses of it,
as ``fake_context.py`` stands in for TorchServe's context: to run the Triton front end
in-process. Error codes and counters behave as the Python backend's (2.51) do."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from clis import ROOT


class TritonError:
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, \
        CANCELLED = range(8)

    def __init__(self, message: str, code: int = 1):
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class Tensor:
    def __init__(self, name: str, array: np.ndarray):
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class InferenceResponse:
    def __init__(self, output_tensors=None, error: Optional[TritonError] = None):
        self._outputs, self._error = list(output_tensors or []), error

    def output_tensors(self) -> list:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> Optional[TritonError]:
        return self._error


class InferenceRequest:
    """What Triton hands ``execute``: input tensors and the request's parameters."""

    def __init__(self, inputs, parameters: Optional[dict] = None):
        self._inputs, self._parameters = list(inputs), parameters or {}

    def inputs(self) -> list:
        return self._inputs

    def parameters(self) -> str:
        return json.dumps(self._parameters)


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Optional[Tensor]:
    return next((t for t in request.inputs() if t.name() == name), None)


class MetricFamily:
    COUNTER, GAUGE, HISTOGRAM = range(3)
    values: Dict[tuple, float] = {}  # (name, sorted labels) -> counter

    def __init__(self, name: str, description: str, kind: int):
        self.name = name

    def Metric(self, labels: Optional[dict] = None) -> "_Metric":
        return _Metric((self.name, tuple(sorted((labels or {}).items()))))


class _Metric:
    def __init__(self, key: tuple):
        self.key = key

    def increment(self, value: float) -> None:
        MetricFamily.values[self.key] = MetricFamily.values.get(self.key, 0.0) + value


def load_front_end():
    """``triton_model.py`` as Triton's stub imports it, with this module as pb_utils."""
    import importlib.util

    sys.modules["triton_python_backend_utils"] = sys.modules[__name__]
    spec = importlib.util.spec_from_file_location("triton_front_end", ROOT / "triton_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_request(image: Optional[bytes], **parameters) -> InferenceRequest:
    inputs = [] if image is None else [Tensor("IMAGE", np.array([[image]], dtype=np.object_))]
    return InferenceRequest(inputs, parameters)


def args_for(entry: Path, config: dict) -> dict:
    """``initialize``'s arguments for a repository entry, as the Python backend gives them."""
    return {"model_config": json.dumps(config), "model_instance_kind": "CPU",
            "model_instance_name": f"{entry.name}_0_0", "model_instance_device_id": "0",
            "model_repository": str(entry), "model_version": "1", "model_name": entry.name}
