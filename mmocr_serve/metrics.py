"""The front ends' metrics: TorchServe's metrics API (on its metrics port, in Prometheus
format, with the shipped config.properties; dimensions ModelName and Level) or Triton's
custom metrics (label ``model``), each through a ``sink`` of the same shape:

- ``mmocr_requests_total``; ``mmocr_errors_total`` by ``ErrorType`` (the error body's type)
- ``mmocr_stage_milliseconds_total`` by ``Stage``: decode, preprocess, forward,
  postprocess, and handler (the rest of the handler's time: request and answer handling)
- ``mmocr_forward_passes_total`` and ``mmocr_forward_images_total`` (images per pass)
- ``mmocr_results_total`` and ``mmocr_boxes_total`` (boxes or text regions per result)

They are added up and reported once a second, from a thread of their own, not per batch:
each metric is a line the worker writes for TorchServe's frontend (a message to the
server on Triton), and ten lines per batch cost a small recognizer's request more than
its own decoding (benchmarks/handler-share.md).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .engine import Stats

# count(name, value, unit, **labels): adds ``value`` to one counter
Sink = Callable[..., None]

logger = logging.getLogger(__name__)

STAGES = ("decode", "preprocess", "forward", "postprocess", "handler")


class Totals:
    def __init__(self):
        self.stats = Stats()
        self.requests = 0
        self.handle_ms = 0.0  # whole handle() calls, the stages included


class MetricsReporter:
    """Adds up batches and reports the sums to ``sink`` every ``interval_s`` (counters: a
    sum reported late is still the sum)."""

    def __init__(self, sink: Sink, interval_s: float = 1.0):
        self.sink, self.interval_s = sink, interval_s
        self.lock = threading.Lock()
        self.pending = Totals()
        threading.Thread(target=self._run, name="mmocr-metrics", daemon=True).start()

    def add(self, stats: Stats, requests: int, handle_ms: float) -> None:
        with self.lock:
            self.pending.stats.add(stats)
            self.pending.requests += requests
            self.pending.handle_ms += handle_ms

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            try:
                self.flush()
            except Exception:  # a metric must never stop the worker
                logger.exception("mmocr-serve: reporting metrics failed")

    def flush(self) -> None:
        with self.lock:
            totals, self.pending = self.pending, Totals()
        if totals.requests:
            report(self.sink, totals.stats, totals.requests, totals.handle_ms)


def torchserve_sink(metrics) -> Sink:
    """Counters in TorchServe's metrics cache ``metrics`` (a worker's ``context.metrics``)."""
    from ts.metrics.dimension import Dimension
    from ts.metrics.metric_type_enum import MetricTypes

    def count(name: str, value: float, unit: str = "count", **dimensions) -> None:
        dims = [Dimension(key, value) for key, value in dimensions.items()]  # a fresh list:
        metrics.add_metric(name, value, unit, dimensions=dims,  # TorchServe appends to it
                           metric_type=MetricTypes.COUNTER)

    return count


def report(count: Sink, stats: Stats, requests: int, total_ms: float) -> None:
    """Figures as counters (Prometheus: rates and ratios of sums) through ``count``."""
    stages = {stage: getattr(stats, f"{stage}_ms") for stage in STAGES[:-1]}
    stages["handler"] = total_ms - sum(stages.values())  # the rest: STAGES[-1]
    count("mmocr_requests_total", requests)
    for kind, errors in stats.errors.items():
        count("mmocr_errors_total", errors, ErrorType=kind)
    for stage, ms in stages.items():
        count("mmocr_stage_milliseconds_total", max(0.0, ms), "ms", Stage=stage)
    count("mmocr_forward_passes_total", stats.passes)
    count("mmocr_forward_images_total", stats.pass_images)
    count("mmocr_results_total", stats.results)
    count("mmocr_boxes_total", stats.boxes)
