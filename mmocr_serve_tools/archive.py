"""Builds a TorchServe .mar archive, or a Triton model repository entry, from an MMOCR config
and checkpoint, after validating them. Both carry the same model directory."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional

import mmocr_serve
from mmocr_serve.adapter import ModelAdapter
from mmocr_serve.errors import ConversionError, ModelLoadError, check_choice
from mmocr_serve.loading import (MANIFEST_NAME, ModelDirManifest, ModelFiles, build_model, load_config,
                      load_weights, model_task, read_checkpoint)
from mmocr_serve.onnx_backend import BACKENDS, export_network
from mmocr_serve.runtime import RuntimeOptions
from mmocr_serve.tasks import DET, OCR, RECOG

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(mmocr_serve.__file__).resolve().parent  # the runtime package
HANDLER_PATH = PACKAGE_DIR.parent / "mmocr_handler.py"
TRITON_MODEL_PATH = PACKAGE_DIR.parent / "triton_model.py"  # packed as NAME/1/model.py
# The runtime modules a worker imports (the handler's, and theirs): an archive carries
# these, and neither the AIGES front end's nor any tool (this package).
# tests/unit/test_converter.py checks the list against the handler's imports.
RUNTIME_MODULES = ("__init__", "adapter", "decode", "engine", "errors", "loading", "metrics",
                   "onnx_backend", "openmp", "options", "passes", "results", "runtime", "tasks")
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")  # TorchServe's own rule
DEVICE_TYPES = ("cpu", "gpu")
# mar: OUTPUT/NAME.mar for TorchServe; triton: OUTPUT/NAME/ in a Triton model repository
FORMATS = ("mar", "triton")
TRITON_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}


@dataclass(frozen=True)
class ArchiveSpec:
    """Everything the converter needs; the CLI only turns argv into this."""

    config: str
    checkpoint: str
    output_folder: str
    model_name: Optional[str] = None  # default: the checkpoint's file stem
    recog_config: Optional[str] = None  # with recog_checkpoint: end-to-end OCR archive
    recog_checkpoint: Optional[str] = None
    model_version: str = "1.0"
    force: bool = False
    cfg_options: Dict[str, object] = field(default_factory=dict)
    recog_cfg_options: Dict[str, object] = field(default_factory=dict)
    trust_checkpoint: bool = False
    # how the workers run: workers, batch size (None: see ``default_batch_size``), threads,
    # memory and layout, written into model-config.yaml
    runtime: RuntimeOptions = RuntimeOptions()
    max_batch_delay_ms: int = 20
    response_timeout_s: int = 120
    device_type: Optional[str] = None  # None: GPU workers where a GPU exists
    backend: str = "torch"  # the recognizer's network: see onnx_backend.BACKENDS
    format: str = "mar"  # see FORMATS

    @classmethod
    def flat(cls, **fields) -> "ArchiveSpec":
        """A spec from one flat set of fields, ``RuntimeOptions``'s among them
        (``batch_size=4``, ``cpu_layout="contiguous"``): for tools that vary any of them."""
        names = {f.name for f in dataclasses.fields(RuntimeOptions)}
        runtime = RuntimeOptions(**{k: v for k, v in fields.items() if k in names})
        return cls(**{k: v for k, v in fields.items() if k not in names}, runtime=runtime)

    @property
    def name(self) -> str:
        return self.model_name or Path(self.checkpoint).stem

    @property
    def archive_path(self) -> Path:
        """The .mar file, or the Triton repository entry (a folder)."""
        suffix = ".mar" if self.format == "mar" else ""
        return Path(self.output_folder).resolve() / f"{self.name}{suffix}"


def build_archive(spec: ArchiveSpec) -> Path:
    """Validate the inputs, then write ``<output_folder>/<name>.mar`` (or, in the triton
    format, the repository entry ``<output_folder>/<name>/``) atomically.

    Returns:
        The archive's (or entry's) path.

    Raises:
        ConversionError: a bad name, an existing archive without ``force``, a config that
            is not a text detector or recognizer, a missing referenced file, or a
            checkpoint that does not load into the model. Nothing is written then.
    """
    check_spec(spec)
    models = [validated_model(spec.config, spec.checkpoint, spec.cfg_options, spec)]
    if spec.recog_config:
        models.append(validated_model(spec.recog_config, spec.recog_checkpoint,
                                      spec.recog_cfg_options, spec))
        roles = [m.role for m in models]
        if roles != [DET, RECOG]:
            raise ConversionError(
                f"an end-to-end archive needs a text detector then a text recognizer; "
                f"CONFIG is a {roles[0]} model and --recog-config a {roles[1]} model")
    task = OCR if len(models) == 2 else models[0].role
    if spec.backend != "torch" and models[-1].role != RECOG:
        raise ConversionError(f"--backend {spec.backend} is for text recognizers (alone or in "
                              "an end-to-end archive); detectors run in torch")
    spec.archive_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mmocr-serve-", dir=spec.archive_path.parent) as tmp:
        stage = Path(tmp) / "stage"
        stage_model_dir(stage, task, models, spec.backend)
        if spec.format == "triton":
            built = triton_entry(spec, stage, Path(tmp), task)
        else:
            write_model_config(Path(tmp) / "model-config.yaml", spec, task)
            built = run_archiver(spec, stage, Path(tmp))
        if built.is_dir() and spec.archive_path.exists():  # a forced rebuild of an entry:
            spec.archive_path.replace(Path(tmp) / "replaced")  # moved aside, then replaced
        built.replace(spec.archive_path)
    logger.info("wrote %s (%s)", spec.archive_path, task)
    return spec.archive_path


@dataclass(frozen=True)
class ValidatedModel:
    """A config and checkpoint that were checked to build and load together."""

    role: str
    cfg: object
    state: dict
    meta: dict
    packed_files: Dict[str, Path]
    model: object  # built with the checkpoint's weights, on the CPU


def validated_model(config: str, checkpoint: str, cfg_options: dict,
                    spec: ArchiveSpec) -> ValidatedModel:
    cfg = load_config(config, cfg_options)
    role = model_task(cfg)
    packed_files = referenced_files(cfg)
    state, meta = read_checkpoint(checkpoint, trust=spec.trust_checkpoint)
    model = build_model(cfg)
    load_weights(model, state)
    return ValidatedModel(role, cfg, state, meta, packed_files, model)


def check_spec(spec: ArchiveSpec) -> None:
    if not MODEL_NAME_PATTERN.match(spec.name):
        raise ConversionError(
            f"model name {spec.name!r} is not accepted by TorchServe: it must match "
            f"{MODEL_NAME_PATTERN.pattern} (pass --model-name)"
        )
    if spec.archive_path.exists() and not spec.force:
        raise ConversionError(f"{spec.archive_path} already exists (pass -f/--force to overwrite)")
    if spec.device_type not in (None, *DEVICE_TYPES):
        raise ConversionError(f"device type must be one of {DEVICE_TYPES}, not {spec.device_type!r}")
    try:  # the worker's own check, before anything is written
        RuntimeOptions.from_mapping({"workers": spec.runtime.workers,
                                     "batch_size": 1 if spec.runtime.batch_size is None
                                     else spec.runtime.batch_size,
                                     **spec.runtime.handler_section()})
    except ModelLoadError as err:
        raise ConversionError(err.message) from None
    if spec.response_timeout_s < 1:
        raise ConversionError(f"response timeout must be at least 1 s, not {spec.response_timeout_s}")
    if bool(spec.recog_config) != bool(spec.recog_checkpoint):
        raise ConversionError("--recog-config and --recog-checkpoint go together")
    if spec.max_batch_delay_ms < 0:
        raise ConversionError(f"max batch delay must be >= 0 ms, not {spec.max_batch_delay_ms}")
    check_choice("backend", spec.backend, BACKENDS, ConversionError)
    check_choice("format", spec.format, FORMATS, ConversionError)


def referenced_files(cfg) -> Dict[str, Path]:
    """Files the model section points to (``*_file`` keys, e.g. a recognizer's dict_file).

    Raises:
        ConversionError: naming the config key and the missing path.
    """
    found: Dict[str, Path] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                dotted = f"{prefix}.{key}"
                if key.endswith("_file") and isinstance(value, str):
                    found[dotted] = Path(value)
                else:
                    walk(value, dotted)

    walk(cfg.model, "model")
    missing = [f"{key}={path}" for key, path in found.items() if not path.is_file()]
    if missing:
        raise ConversionError(
            "the config points to files that do not exist: " + ", ".join(missing)
            + " (give the right path with --cfg-options KEY=PATH)"
        )
    return {key: path.resolve() for key, path in found.items()}


def stage_model_dir(stage: Path, task: str, models: List[ValidatedModel],
                    backend: str = "torch") -> None:
    """Lay out the model directory that the archive carries."""
    package = stage / PACKAGE_DIR.name
    package.mkdir(parents=True)
    for module in RUNTIME_MODULES:
        shutil.copy2(PACKAGE_DIR / f"{module}.py", package / f"{module}.py")
    # At the root, on the worker's PYTHONPATH: runs before the worker imports torch.
    shutil.copy2(PACKAGE_DIR / "worker_site.py", stage / "sitecustomize.py")
    files = {model.role: stage_model(stage, model) for model in models}
    if backend == "onnxruntime":
        files[RECOG] = replace(files[RECOG], network=f"{RECOG}.onnx")
        export_network(ModelAdapter(models[-1].model), stage / files[RECOG].network)
    (stage / MANIFEST_NAME).write_text(ModelDirManifest(task=task, models=files).to_json())


def stage_model(stage: Path, model: ValidatedModel) -> ModelFiles:
    """Write one model's merged config, re-saved checkpoint and referenced files."""
    import torch

    repointed = {}
    for index, (key, src) in enumerate(sorted(model.packed_files.items())):
        rel = f"files/{model.role}-{index}-{src.name}"
        (stage / "files").mkdir(exist_ok=True)
        shutil.copy2(src, stage / rel)
        repointed[key] = rel
    cfg = copy.deepcopy(model.cfg)
    cfg.merge_from_dict(repointed)
    cfg.dump(str(stage / f"{model.role}_config.py"))
    # A plain state dict with JSON-safe metadata: the server never needs arbitrary unpickling.
    safe_meta = {k: v for k, v in model.meta.items() if isinstance(v, (str, int, float, bool))}
    torch.save({"state_dict": model.state, "meta": safe_meta}, str(stage / f"{model.role}.pth"))
    return ModelFiles(config=f"{model.role}_config.py", checkpoint=f"{model.role}.pth",
                      files=repointed)


def default_batch_size(task: str) -> int:
    """On a CPU batching multiplies a recognizer's throughput but gains a large detector
    nothing (benchmarks/cpu.md), so only recognizers batch by default."""
    return 8 if task == RECOG else 1


def write_model_config(path: Path, spec: ArchiveSpec, task: str) -> None:
    """The archive's model-config.yaml: TorchServe's per-model settings, and the handler's
    runtime options (``RuntimeOptions.handler_section``)."""
    import yaml

    config = {
        "minWorkers": spec.runtime.workers,
        "maxWorkers": spec.runtime.workers,
        "batchSize": spec.runtime.batch_size or default_batch_size(task),
        "maxBatchDelay": spec.max_batch_delay_ms,
        "responseTimeout": spec.response_timeout_s,
        "handler": spec.runtime.handler_section(),
    }
    if spec.device_type:
        config["deviceType"] = spec.device_type
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def triton_entry(spec: ArchiveSpec, stage: Path, workdir: Path, task: str) -> Path:
    """A Triton model repository entry in ``workdir``: ``config.pbtxt``, and the model
    directory as version ``1`` with the front end as its ``model.py``."""
    entry = workdir / spec.name
    entry.mkdir()
    shutil.copy2(TRITON_MODEL_PATH, stage / "model.py")
    stage.replace(entry / "1")
    (entry / "config.pbtxt").write_text(triton_config(spec, task))
    return entry


def triton_config(spec: ArchiveSpec, task: str) -> str:
    """``config.pbtxt``, from the settings that model-config.yaml holds for TorchServe: the
    batch size as ``max_batch_size``, the batch delay as the dynamic batcher's queue delay,
    the workers as instances (of the device type's kind; Triton picks GPU instances where a
    GPU exists without one), and the runtime options as ``parameters``."""
    from .triton import INPUT, OUTPUT

    kind = f" kind: {TRITON_KINDS[spec.device_type]}" if spec.device_type else ""
    lines = [
        f'name: "{spec.name}"',
        'backend: "python"',
        f"max_batch_size: {spec.runtime.batch_size or default_batch_size(task)}",
        'input [{ name: "%s" data_type: TYPE_STRING dims: [1] }]' % INPUT,
        'output [{ name: "%s" data_type: TYPE_STRING dims: [1] }]' % OUTPUT,
        f"dynamic_batching {{ max_queue_delay_microseconds: {spec.max_batch_delay_ms * 1000} }}",
        f"instance_group [{{ count: {spec.runtime.workers}{kind} }}]",
    ]
    lines += [f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}'
              for key, value in spec.runtime.handler_section().items()]
    return "\n".join(lines) + "\n"


def run_archiver(spec: ArchiveSpec, stage: Path, workdir: Path) -> Path:
    """Pack ``stage`` with torch-model-archiver's own API; returns the .mar in ``workdir``."""
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import package_model
    from model_archiver.model_packaging_utils import ModelExportUtils

    config = ModelArchiverConfig(
        model_name=spec.name,
        handler=str(HANDLER_PATH),
        version=spec.model_version,
        extra_files=str(stage),
        export_path=str(workdir),
        config_file=str(workdir / "model-config.yaml"),
        force=True,
        # Uncompressed: weights barely deflate, and deflating them slows every conversion
        # and every worker's unpacking (benchmarks/archive-format.md).
        archive_format="zip-store",
    )
    # The archiver copies the files into tempfile.gettempdir()/NAME: two builds of one name
    # at once (two test runs, two CI jobs) would share it. This build's own folder instead.
    (workdir / "archiver").mkdir()
    shared_tmp, tempfile.tempdir = tempfile.tempdir, str(workdir / "archiver")
    try:
        package_model(config, manifest=ModelExportUtils.generate_manifest_json(config))
    except Exception as err:
        raise ConversionError(f"torch-model-archiver failed: {err}") from None
    finally:
        tempfile.tempdir = shared_tmp
    return workdir / f"{spec.name}.mar"


def archive_summary(path: Path) -> dict:
    """What an archive holds: its TorchServe manifest and mmocr-serve manifest (for tests, CLI)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return {
            "files": sorted(zf.namelist()),
            "mar_manifest": json.loads(zf.read("MAR-INF/MANIFEST.json")),
            "manifest": json.loads(zf.read(MANIFEST_NAME)),
        }
