"""Convert an MMOCR 0.x text detector or recognizer (config + checkpoint), or a detector and a
recognizer together (end-to-end OCR), to a TorchServe .mar archive or a Triton Inference
Server model repository entry."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from mmocr_serve_tools.archive import DEVICE_TYPES, FORMATS, ArchiveSpec, build_archive  # noqa: E402
from mmocr_serve.errors import ServeError  # noqa: E402
from mmocr_serve.onnx_backend import BACKENDS  # noqa: E402
from mmocr_serve.runtime import CPU_LAYOUTS, CPU_MEMORY, CPU_PRECISIONS, RuntimeOptions  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    defaults = ArchiveSpec(config="", checkpoint="", output_folder="")
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("config", help="config file, or a path under mmocr's shipped configs "
                        "(e.g. textdet/dbnet/dbnet_r18_fpnc_1200e_icdar2015.py)")
    parser.add_argument("checkpoint", help="checkpoint file (.pth)")
    parser.add_argument("--output-folder", required=True,
                        help="where NAME.mar is written (the triton format: the model "
                        "repository, where the entry NAME/ is written)")
    parser.add_argument("--format", choices=FORMATS, default=defaults.format,
                        help="mar: a TorchServe archive; triton: a Triton Inference Server "
                        "model repository entry (config.pbtxt, 1/model.py, the model)")
    parser.add_argument("--model-name", default=None,
                        help="archive and endpoint name (default: the checkpoint's file stem)")
    parser.add_argument("--model-version", default=defaults.model_version)
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing archive")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. model.label_convertor.dict_file=dict.txt")
    e2e = parser.add_argument_group("end-to-end OCR (detect, crop, recognise in one request)")
    e2e.add_argument("--recog-config", default=None,
                     help="a text recognizer's config; CONFIG is then the detector's")
    e2e.add_argument("--recog-checkpoint", default=None, help="the recognizer's checkpoint")
    e2e.add_argument("--recog-cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                     help="override keys of the recognizer's config")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow a checkpoint that needs arbitrary unpickling (runs its code)")
    group = parser.add_argument_group("model-config.yaml (TorchServe) or config.pbtxt (Triton)")
    group.add_argument("--workers", type=int, default=defaults.runtime.workers,
                       help="worker processes, each holding one copy of the model")
    group.add_argument("--batch-size", type=int, default=defaults.runtime.batch_size,
                       help="most requests TorchServe gathers into one handler call "
                       "(default: 8 for a recognizer, 1 for a detector or end-to-end archive)")
    group.add_argument("--max-batch-delay", type=int, default=defaults.max_batch_delay_ms,
                       help="ms TorchServe waits to fill a batch")
    group.add_argument("--response-timeout", type=int, default=defaults.response_timeout_s,
                       help="s before TorchServe gives up on a batch and restarts the worker")
    group.add_argument("--device-type", choices=DEVICE_TYPES, default=None,
                       help="force CPU or GPU workers (default: GPU where one exists)")
    group.add_argument("--max-image-pixels", type=int, default=defaults.runtime.max_image_pixels,
                       help="larger images are refused with 413")
    group.add_argument("--cpu-threads", type=int, default=None,
                       help="torch threads per CPU worker (default: the CPUs the worker may "
                       "use, its affinity and cgroup quota, divided by the workers; the "
                       "MMOCR_SERVE_CPU_THREADS variable overrides at start)")
    group.add_argument("--max-forward-batch", type=positive, default=defaults.runtime.max_forward_batch,
                       help="most images (or end-to-end crops) in one forward pass (default: "
                       "32 on a GPU and for end-to-end crops, else the batch size)")
    group.add_argument("--cpu-memory", choices=sorted(CPU_MEMORY), default=defaults.runtime.cpu_memory,
                       help="reuse: a CPU worker keeps freed memory for its next requests "
                       "(faster; its memory stays at its peak); release: give it back at once")
    group.add_argument("--cpu-layout", choices=sorted(CPU_LAYOUTS), default=defaults.runtime.cpu_layout,
                       help="channels_last: a CPU worker stores convolution weights NHWC "
                       "(faster; models with mmcv ops stay contiguous); contiguous: NCHW")
    group.add_argument("--cpu-precision", choices=sorted(CPU_PRECISIONS),
                       default=defaults.runtime.cpu_precision,
                       help="fp32: answers equal MMOCR's; bf16: a CPU worker runs the networks "
                       "in bfloat16 where the CPU has avx512_bf16 or AMX (faster, answers "
                       "close but not equal; docs/batching.md), float32 elsewhere")
    group.add_argument("--backend", choices=sorted(BACKENDS), default=defaults.backend,
                       help="onnxruntime: export the recognizer's network, check it against "
                       "torch, and run it in ONNX Runtime on CPU workers")
    return parser.parse_args(argv)


def positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a positive integer, not {value!r}")
    return int(value)


def parse_cfg_options(pairs: List[str]) -> dict:
    """``KEY=VALUE`` strings to a dict; values stay strings (paths, names)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ServeError(f"--cfg-options takes KEY=VALUE, not {pair!r}")
        options[key] = value
    return options


def spec_from_args(args: argparse.Namespace) -> ArchiveSpec:
    return ArchiveSpec(
        config=args.config, checkpoint=args.checkpoint, output_folder=args.output_folder,
        model_name=args.model_name, model_version=args.model_version, force=args.force,
        cfg_options=parse_cfg_options(args.cfg_options), trust_checkpoint=args.trust_checkpoint,
        recog_config=args.recog_config, recog_checkpoint=args.recog_checkpoint,
        recog_cfg_options=parse_cfg_options(args.recog_cfg_options),
        runtime=RuntimeOptions(
            workers=args.workers, batch_size=args.batch_size,
            max_image_pixels=args.max_image_pixels, cpu_threads=args.cpu_threads,
            max_forward_batch=args.max_forward_batch, cpu_memory=args.cpu_memory,
            cpu_layout=args.cpu_layout, cpu_precision=args.cpu_precision),
        max_batch_delay_ms=args.max_batch_delay, response_timeout_s=args.response_timeout,
        device_type=args.device_type, backend=args.backend, format=args.format)


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    try:
        path = build_archive(spec_from_args(args))
    except ServeError as err:
        print(f"mmocr2torchserve: error: {err.message}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
