"""Runtime options: how a worker runs its models, read from the archive's model-config.yaml
(its ``handler`` section, written by the converter) or from AIGES's ``[wrapper]`` keys.

``RuntimeOptions`` is the one typed form; a bad value is a ``ModelLoadError`` naming it.
``apply_process_settings`` sets what belongs to the whole process (torch threads, malloc);
only the front end that owns the process calls it (the handler's ``initialize``,
``wrapperInit``), never the code that loads a model. ``use_channels_last`` applies
``cpu_layout`` to one loaded model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import openmp
from .decode import DEFAULT_MAX_PIXELS
from .errors import ModelLoadError, check_choice
from .tasks import DET

logger = logging.getLogger(__name__)

GPU_MAX_FORWARD_BATCH = 32
# What a CPU worker does with the memory a forward pass frees.
CPU_MEMORY = {
    "reuse": "keep it for the next pass (glibc's malloc stops mapping large blocks afresh); "
             "a worker's memory stays at its peak",
    "release": "give it back to the system at once (glibc's default)",
}
# How a CPU worker stores a detector's convolution weights (and so its activations).
CPU_LAYOUTS = {
    "channels_last": "NHWC, where oneDNN's CPU convolutions run fastest; models with mmcv's "
                     "compiled ops stay contiguous",
    "contiguous": "NCHW, PyTorch's default",
}
# The number format of a CPU worker's forward passes.
CPU_PRECISIONS = {
    "fp32": "float32 throughout: answers equal MMOCR's own",
    "bf16": "the networks in bfloat16 (torch.autocast) on CPUs with avx512_bf16 or AMX, "
            "post-processing in float32: faster, answers close to MMOCR's but not equal; "
            "float32 (with a warning) on other CPUs",
}
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
HANDLER_KEYS = ("max_image_pixels", "cpu_threads", "max_forward_batch", "cpu_memory", "cpu_layout",
                "cpu_precision")
_CHOICES = {"cpu_memory": CPU_MEMORY, "cpu_layout": CPU_LAYOUTS, "cpu_precision": CPU_PRECISIONS}


@dataclass(frozen=True)
class RuntimeOptions:
    # requests TorchServe gathers into one handler call; None (in an ArchiveSpec only):
    # the converter's default for the task
    batch_size: Optional[int] = None
    workers: int = 1
    cpu_threads: Optional[int] = None  # None: the cores shared evenly by the workers
    # images (or end-to-end crops) in one forward pass; None: see ``forward_batch``
    max_forward_batch: Optional[int] = None
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    cpu_memory: str = "reuse"
    cpu_layout: str = "channels_last"
    cpu_precision: str = "fp32"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], other_keys: Sequence[str] = ()
                     ) -> "RuntimeOptions":
        """Typed options from strings, numbers or ``"auto"`` (= the default).

        Raises:
            ModelLoadError: a key that is neither an option nor one of ``other_keys``, or
                a value of the wrong type or out of range, naming it.
        """
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(fields) - set(other_keys))
        if unknown:
            raise ModelLoadError(f"unknown runtime option(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(fields)}")
        given = {k: v for k, v in values.items() if k in fields and v not in (None, "", "auto")}
        typed = {}
        for name, value in given.items():
            if name in _CHOICES:
                typed[name] = str(value)
                continue
            try:
                typed[name] = int(value)
            except (TypeError, ValueError):
                typed[name] = 0
            if typed[name] < 1 or isinstance(value, bool):
                raise ModelLoadError(f"{name} must be a positive integer, not {value!r}")
        options = cls(**typed)
        for name, choices in _CHOICES.items():
            check_choice(name, getattr(options, name), choices, ModelLoadError)
        return options

    def handler_section(self) -> dict:
        """The options as an archive's model-config.yaml holds them, in its ``handler``
        section (``"auto"`` for a default); ``from_mapping`` reads them back. TorchServe's
        own keys (``minWorkers``, ``batchSize``) carry ``workers`` and ``batch_size``."""
        return {name: "auto" if getattr(self, name) is None else getattr(self, name)
                for name in HANDLER_KEYS}

    def forward_batch(self, device: str, crops: bool = False) -> int:
        """Most images in one forward pass: as given, else 32 on a GPU and on a CPU the
        batch size, so a batch runs as one pass; end-to-end crops (any number per page)
        run 32 at a time, as on a GPU (benchmarks/cpu-ocr.md)."""
        if self.max_forward_batch is not None:
            return self.max_forward_batch
        return GPU_MAX_FORWARD_BATCH if device != "cpu" or crops else self.batch_size or 1

    def threads(self, proc: Path = Path("/proc/self")) -> "ThreadChoice":
        """Torch threads for one CPU worker: ``cpu_threads`` (or the
        ``MMOCR_SERVE_CPU_THREADS`` variable), else the CPUs this process may run on (the
        smaller of its affinity mask and its cgroup CPU quota) shared evenly by the workers.
        ``proc``: where ``cgroup_cpu_quota`` reads this process's cgroups."""
        value = os.environ.get("MMOCR_SERVE_CPU_THREADS")
        if value not in (None, "", "0", "auto"):
            return ThreadChoice(max(1, int(value)), "MMOCR_SERVE_CPU_THREADS")
        if self.cpu_threads is not None:
            return ThreadChoice(self.cpu_threads, "cpu_threads")
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        affinity = affinity or os.cpu_count() or 1
        quota = cgroup_cpu_quota(proc)
        cpus, source = affinity, f"affinity: {affinity} cores"
        if quota is not None and int(quota) < affinity:
            cpus, source = max(1, int(quota)), f"quota: cgroup CPU quota {quota:g}"
        if self.workers > 1 and cpus // self.workers < cpus:
            return ThreadChoice(max(1, cpus // self.workers),
                                f"workers: {cpus} CPUs shared by {self.workers} workers")
        return ThreadChoice(cpus, source)


@dataclass(frozen=True)
class ThreadChoice:
    """A torch thread count and where it came from, for the worker's start-up line."""

    count: int
    source: str

    def __str__(self) -> str:
        return f"{self.count} torch threads ({self.source})"


def cgroup_cpu_quota(proc: Path = Path("/proc/self")) -> Optional[float]:
    """The CPUs that the cgroups of this process allow (quota / period, the smallest on
    the way to the hierarchy's root), or None without a quota.

    ``docker run --cpus`` and a Kubernetes CPU limit set such a quota; the affinity mask
    does not show it. Reads cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``) mounts as ``/proc/self/mountinfo`` lists them.
    """
    try:
        mounts = (proc / "mountinfo").read_text().splitlines()
        memberships = (proc / "cgroup").read_text().splitlines()
    except OSError:
        return None
    paths = {}  # "" for v2, else a v1 controller -> this process's cgroup path
    for line in memberships:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    limits = []
    for line in mounts:
        fields, _, tail = line.partition(" - ")
        fields, tail = fields.split(), tail.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2" and "" in paths:
            path = paths[""]
        elif tail[0] == "cgroup" and "cpu" in tail[2].split(",") and "cpu" in paths:
            path = paths["cpu"]
        else:
            continue
        limits += _quotas_up_to_root(Path(fields[4]), fields[3], path, tail[0] == "cgroup2")
    return min(limits) if limits else None


def _quotas_up_to_root(mount: Path, mount_root: str, path: str, v2: bool) -> list:
    """CPU quotas of ``path`` and its ancestors inside one cgroup mount. Inside a
    container, the mount's root is the container's own cgroup, which its path may not name."""
    rel = os.path.relpath(path, mount_root) if path.startswith(mount_root) else "."
    here = (mount / rel).resolve() if (mount / rel).is_dir() else mount
    found = []
    while True:
        try:
            if v2:
                quota, period = (here / "cpu.max").read_text().split()[:2]
            else:
                quota = (here / "cpu.cfs_quota_us").read_text().strip()
                period = (here / "cpu.cfs_period_us").read_text().strip()
            if quota not in ("max", "-1") and int(period) > 0:
                found.append(int(quota) / int(period))
        except (OSError, ValueError):
            pass
        if here == mount or mount not in here.parents:
            return found
        here = here.parent


def apply_process_settings(options: RuntimeOptions, device: str) -> Optional[str]:
    """Torch's thread count and, on a CPU, the malloc mode, for this whole process.

    Returns:
        On a CPU, the thread count, where it came from and the OpenMP wait policy, for
        the worker's start-up line; else None.
    """
    import torch

    if device != "cpu":
        return None
    threads = options.threads()
    torch.set_num_threads(threads.count)
    set_cpu_memory(options.cpu_memory)
    return f"{threads}; {openmp.describe()}"


def set_cpu_memory(mode: str) -> bool:
    """Apply a ``CPU_MEMORY`` mode to this process; returns whether it took effect.

    glibc serves large blocks with fresh ``mmap`` calls and unmaps them when freed, so
    each pass over a large image page-faults and zero-fills its activations again;
    "reuse" turns that off. Other C libraries (musl, macOS) are left as they are.
    """
    check_choice("cpu_memory", mode, CPU_MEMORY, ModelLoadError)
    if mode == "release":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        logger.warning("mmocr-serve: not glibc; cpu_memory=reuse ignored")
        return False


def use_channels_last(adapter) -> bool:
    """Store a detector's 4-D weights channels-last (NHWC), the layout oneDNN's CPU
    convolutions run fastest on large feature maps (recognizers, with small inputs,
    gain nothing and stay contiguous). ``adapter``: an ``adapter.ModelAdapter``, whose
    ``channels_last`` records the outcome.

    Returns:
        Whether the layout changed. It stays contiguous (logged) where the model has
        mmcv's compiled ops, which index their inputs as contiguous NCHW, or where a
        ``trial_pass`` in the new layout fails.
    """
    import torch

    if adapter.task != DET:
        return False
    ops = sorted({type(module).__name__ for module in adapter.model.modules()
                  if type(module).__module__.startswith("mmcv.ops")})
    if ops:
        logger.warning("mmocr-serve: %s keeps contiguous weights: mmcv ops (%s) read "
                       "their inputs as NCHW", adapter.architecture, ", ".join(ops))
        return False
    adapter.model.to(memory_format=torch.channels_last)
    try:
        trial_pass(adapter)
    except Exception as err:
        adapter.model.to(memory_format=torch.contiguous_format)
        logger.warning("mmocr-serve: %s keeps contiguous weights: a channels-last pass "
                       "failed: %s: %s", adapter.architecture, type(err).__name__, err)
        return False
    adapter.channels_last = True
    return True


# CPU flags of native bfloat16 arithmetic; without them oneDNN emulates bf16, slower than fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# The parts of a model that run the network; what follows them (post-processing, label
# conversion) reads numpy arrays, which have no bfloat16.
_NETWORK_PARTS = ("bbox_head", "encoder", "decoder")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset:
    """The first processor's feature flags (Linux); empty where they cannot be read."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def use_bfloat16(adapter, flags: Optional[frozenset] = None) -> bool:
    """Run a model's network (``extract_feat`` and its head, or its encoder and decoder)
    under ``torch.autocast`` in bfloat16, each part's output back in float32.

    ``flags``: the CPU's feature flags (default: ``cpu_flags()``). Without native bf16 the
    model stays float32, with a warning, rather than refusing to load: an archive built
    for bf16 still serves on every machine of a mixed fleet, there exactly as MMOCR does.

    Returns:
        Whether the model now runs in bfloat16 (``adapter.bfloat16`` records it).
    """
    flags = cpu_flags() if flags is None else flags
    if not any(flag in flags for flag in BF16_FLAGS):
        logger.warning("mmocr-serve: cpu_precision=bf16 ignored: this CPU has neither %s, "
                       "so %s runs in float32", " nor ".join(BF16_FLAGS), adapter.architecture)
        return False
    if adapter.network is not None:
        logger.warning("mmocr-serve: cpu_precision=bf16 ignored: %s runs in ONNX Runtime, "
                       "in float32", adapter.architecture)
        return False
    run_in_bfloat16(adapter.model)
    adapter.bfloat16 = True
    logger.info("mmocr-serve: %s runs its network in bfloat16 (cpu_precision=bf16)",
                adapter.architecture)
    return True


def run_in_bfloat16(model) -> None:
    """Wrap an MMOCR model's ``extract_feat`` and its head (or encoder and decoder) in
    ``torch.autocast(bfloat16)``; their outputs are cast back to float32."""
    model.extract_feat = _in_bfloat16(model.extract_feat)
    for name in _NETWORK_PARTS:
        part = getattr(model, name, None)
        if part is not None:
            part.forward = _in_bfloat16(part.forward)


def _in_bfloat16(forward):
    import torch

    def run(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return _to_float32(forward(*args, **kwargs))
    return run


def _to_float32(value):
    """Tensors in bfloat16, also inside tuples, lists and dicts, as float32."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype == torch.bfloat16 else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return {key: _to_float32(v) for key, v in value.items()}
    return value


def trial_pass(adapter, data: Optional[dict] = None):
    """A prepared image (default: a plain one) through the backbone, neck and (where its
    forward takes the features alone) the head; not the post-processing, which random or
    untrained maps can keep busy for minutes (DRRG, TextSnake).

    Returns:
        The backbone and neck's features.
    """
    import inspect

    import torch

    img = adapter.network_input([data or _plain_image(adapter)])
    with torch.no_grad():
        features = adapter.model.extract_feat(img)
        head = getattr(adapter.model, "bbox_head", None)
        if head is not None and len(inspect.signature(head.forward).parameters) == 1:
            head(features)
    return features


def _plain_image(adapter) -> dict:
    """A plain image of a typical size, prepared for ``trial_pass``."""
    size = (640, 360) if adapter.task == DET else (128, 32)
    image = np.full((size[1], size[0], 3), 200, np.uint8)
    if adapter.image_flag.startswith("grayscale"):
        image = image[:, :, 0]
    return adapter.prepare(image, from_array=False)
