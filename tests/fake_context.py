"""A small stand-in for TorchServe's Context: what the handler reads and sets, with
TorchServe's own metrics cache (whose metrics a TorchServe worker logs for the frontend)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import ts
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

TS_METRICS = Path(ts.__file__).parent / "configs" / "metrics.yaml"  # TorchServe's default


class FakeContext:
    def __init__(self, model_dir, gpu_id=None, batch_size=4, model_yaml_config=None):
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": gpu_id,
                                  "batch_size": batch_size}
        self.model_yaml_config = model_yaml_config or {}
        self.manifest = {}
        self.statuses = {}
        self.headers = {}
        self.metrics = MetricsCacheYamlImpl(str(TS_METRICS))
        self.metrics.initialize_cache()
        self.metrics.model_name = Path(model_dir).name

    def set_response_status(self, code=200, phrase="", idx=0):
        self.statuses[idx] = (code, phrase)

    def set_response_content_type(self, idx, value):
        self.headers.setdefault(idx, {})["content-type"] = value


def load_handler_class(model_dir: Path):
    """Import mmocr_handler.py from the unpacked archive, as TorchServe does."""
    sys.path.insert(0, str(model_dir))
    try:
        spec = importlib.util.spec_from_file_location("mmocr_handler_under_test",
                                                      model_dir / "mmocr_handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.MMOCRHandler
    finally:
        sys.path.remove(str(model_dir))
