"""TorchServe handler for MMOCR 0.x text detectors and recognizers: a thin adapter.

Request rows become images through the project's one decoder, the engine runs them, and
each result or error is encoded as JSON for its own request (wire format:
``mmocr_serve.results``). The engine and its modules travel inside the .mar archive.

Metrics: ``mmocr_serve.metrics``, through TorchServe's metrics API. (TorchServe takes the
one class defined here as the handler, so everything else lives in the package.)
"""

from __future__ import annotations

import logging
import time

from ts.torch_handler.base_handler import BaseHandler

from mmocr_serve.engine import Stats, load_engine
from mmocr_serve.errors import ServeError
from mmocr_serve.metrics import MetricsReporter, torchserve_sink
from mmocr_serve.runtime import RuntimeOptions, apply_process_settings

logger = logging.getLogger(__name__)


class MMOCRHandler(BaseHandler):
    """Serves one archive built by ``tools/deployment/mmocr2torchserve.py``."""

    def initialize(self, context):
        """Load the model once per worker, on the device TorchServe gave the worker."""
        import torch

        props = context.system_properties
        gpu_id = props.get("gpu_id")
        self.device = "cpu" if gpu_id is None else f"cuda:{gpu_id}"
        model_yaml = getattr(context, "model_yaml_config", None) or {}
        options = RuntimeOptions.from_mapping({"workers": model_yaml.get("minWorkers", 1),
                                               "batch_size": props.get("batch_size", 1),
                                               **model_yaml.get("handler", {})},
                                              other_keys=("task",))  # older archives
        settings = apply_process_settings(options, self.device)
        self.engine = load_engine(props["model_dir"], self.device, options)
        self.context = context
        self.metrics = MetricsReporter(torchserve_sink(context.metrics))
        self.initialized = True
        logger.info("mmocr-serve: %s model ready on %s (%s)", self.engine.task, self.device,
                    settings or f"{torch.get_num_threads()} torch threads")

    def handle(self, data, context):
        """One JSON object per request, in order; a bad request fails only its own slot."""
        began = time.perf_counter()
        stats = Stats()
        outcomes = self.engine.predict_payloads(data, stats)
        answers = [encode_outcome(context, idx, outcome) for idx, outcome in enumerate(outcomes)]
        self.metrics.add(stats, len(data), (time.perf_counter() - began) * 1000)
        return answers


def encode_outcome(context, idx: int, outcome) -> dict:
    """A result's dict, or an error's dict with its HTTP status set on request ``idx``."""
    context.set_response_content_type(idx, "application/json")
    if isinstance(outcome, ServeError):
        context.set_response_status(outcome.status, outcome.kind, idx)
    return outcome.to_dict()
