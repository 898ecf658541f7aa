"""Triton Inference Server front end (Python backend): a thin adapter over the engine.

The converter (``--format triton``) packs this file as ``NAME/1/model.py`` beside the
model directory it lays out for TorchServe and a ``config.pbtxt`` written from the same
runtime options. Triton's dynamic batcher hands ``execute`` the requests it gathered; each
request's ``IMAGE`` (one BYTES element) and its request parameters (the options) become a
payload, the engine answers them all in one call, and each outcome becomes that request's
own response: the JSON answer in ``ANSWER``, or an error whose message is the JSON error
body. Python 3.9 syntax: a user may serve the repository from an older Triton image.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

# The stub embeds Python in isolated mode, which ignores PYTHONPATH: its entries (the
# packages of the environment that serves, mmocr_serve_tools/triton.py) are put first
# here, after this file's folder, whose mmocr_serve is the one this entry was built with.
HERE = str(Path(__file__).resolve().parent)
sys.path[:0] = [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                         if p and p not in sys.path and p != HERE]

from mmocr_serve.openmp import sleep_while_waiting  # noqa: E402

sleep_while_waiting()  # before anything imports torch (mmocr_serve.openmp)

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from mmocr_serve.engine import Stats, load_engine  # noqa: E402
from mmocr_serve.errors import ServeError  # noqa: E402
from mmocr_serve.metrics import MetricsReporter  # noqa: E402
from mmocr_serve.runtime import (HANDLER_KEYS, RuntimeOptions,  # noqa: E402
                                 apply_process_settings)

logger = logging.getLogger(__name__)
INPUT, OUTPUT = "IMAGE", "ANSWER"


class TritonPythonModel:
    """Serves one repository entry written by ``tools/deployment/mmocr2torchserve.py``."""

    def initialize(self, args):
        """Load the model once per instance, on the device Triton gave the instance."""
        import torch

        logging.basicConfig(level=logging.INFO)
        config = json.loads(args["model_config"])
        self.device = ("cpu" if args["model_instance_kind"] != "GPU"
                       else f"cuda:{args['model_instance_device_id']}")
        options = runtime_options(config)
        settings = apply_process_settings(options, self.device)
        model_dir = Path(args["model_repository"]) / args["model_version"]
        self.engine = load_engine(model_dir, self.device, options)
        self.metrics = MetricsReporter(triton_sink(args["model_name"]))
        logger.info("mmocr-serve: %s model ready on %s (%s)", self.engine.task, self.device,
                    settings or f"{torch.get_num_threads()} torch threads")

    def execute(self, requests):
        """One response per request, in order; a bad request fails only its own."""
        began = time.perf_counter()
        stats = Stats()
        outcomes = self.engine.predict_payloads([request_payload(r) for r in requests], stats)
        responses = [encode_outcome(outcome) for outcome in outcomes]
        self.metrics.add(stats, len(requests), (time.perf_counter() - began) * 1000)
        return responses

    def finalize(self):
        self.metrics.flush()


def runtime_options(config: dict) -> RuntimeOptions:
    """The options ``config.pbtxt`` carries: its ``parameters`` of ours (others, such as
    ``EXECUTION_ENV_PATH``, are Triton's), the instance count as ``workers`` and
    ``max_batch_size`` as ``batch_size``.

    Raises:
        ModelLoadError: a bad value, named.
    """
    params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()
              if k in HANDLER_KEYS}
    workers = sum(group.get("count", 1) for group in config.get("instance_group", [])) or 1
    return RuntimeOptions.from_mapping({"workers": workers,
                                        "batch_size": max(1, config.get("max_batch_size", 1)),
                                        **params})


def request_payload(request) -> dict:
    """A request as a payload row: its one image, and its parameters as options (a missing
    or many-element ``IMAGE`` is the decoder's to refuse)."""
    tensor = pb_utils.get_input_tensor_by_name(request, INPUT)
    elements = [] if tensor is None else list(tensor.as_numpy().reshape(-1))
    image = elements[0] if len(elements) == 1 else (elements or None)
    return {**json.loads(request.parameters() or "{}"), "body": image}


def encode_outcome(outcome) -> "pb_utils.InferenceResponse":
    """A result's JSON in ``ANSWER``, or an error carrying the JSON error body."""
    if isinstance(outcome, ServeError):
        return pb_utils.InferenceResponse(error=triton_error(outcome))
    answer = json.dumps(outcome.to_dict(), ensure_ascii=True).encode()
    return pb_utils.InferenceResponse([pb_utils.Tensor(OUTPUT, np.array([[answer]], np.object_))])


def triton_error(err: ServeError) -> "pb_utils.TritonError":
    """Triton's codes have no 413 or 422: a client error (4xx) is INVALID_ARG, which Triton
    answers 400 over HTTP; the rest INTERNAL (500). The body's own ``code`` keeps ours."""
    code = (pb_utils.TritonError.INVALID_ARG if 400 <= err.status < 500
            else pb_utils.TritonError.INTERNAL)
    return pb_utils.TritonError(json.dumps(err.to_dict(), ensure_ascii=True), code)


def triton_sink(model_name: str):
    """Counters on Triton's metrics port, labelled with the model's name."""
    families, metrics = {}, {}

    def count(name: str, value: float, unit: str = "count", **labels) -> None:
        key = (name, tuple(sorted(labels.items())))
        if key not in metrics:
            if name not in families:
                families[name] = pb_utils.MetricFamily(
                    name=name, description=f"mmocr-serve: {name} ({unit})",
                    kind=pb_utils.MetricFamily.COUNTER)
            metrics[key] = families[name].Metric(labels={"model": model_name, **labels})
        metrics[key].increment(value)

    return count

