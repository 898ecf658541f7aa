"""Trains the demo detector and recognizer under demo/models/ from nothing but the stack.

Two processes side by side, one CPU thread each: each renders its model's training set
(pages of words for the detector, word crops cut from other pages for the recognizer; see
``mmocr_serve_tools.synth``), then trains its model with MMOCR's own ``train_detector`` on the
mmcv runner, from the configs in demo/models/. The final checkpoints, as the runner writes
them, are copied beside the configs, and the pages the demo and the benchmark read to
demo/.

    python tools/train_demo_models.py [--models det recog] [--det-iters N] [--recog-iters N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {"det": "demo/models/dbnet_demo.py", "recog": "demo/models/crnn_demo.py"}


@dataclass(frozen=True)
class TrainSpec:
    models: Sequence[str] = ("det", "recog")
    det_iters: Optional[int] = None  # None: the config's runner.max_iters
    recog_iters: Optional[int] = None
    det_pages: int = 1000  # rendered pages the detector trains on
    recog_pages: int = 800  # rendered pages cut into the recognizer's word crops
    crops_per_page: int = 100  # the most words cut from one page: more pages, more fonts
    detected_pages: int = 400  # of the recognizer's pages, those cut by the detector's boxes too
    seed: int = 2026
    data_dir: Path = ROOT / "work" / "demo-data"
    work_dir: Path = ROOT / "work" / "train"
    output_dir: Path = ROOT / "demo" / "models"  # where the checkpoints are copied
    resume: bool = False  # go on from work_dir's latest checkpoint, up to the iterations given
    # start from the committed checkpoints beside the configs: layers whose shape the
    # config changed (a recognizer's classes) start afresh
    warm_start: bool = False

    def iters(self, role: str) -> Optional[int]:
        return self.det_iters if role == "det" else self.recog_iters

    def pages(self, role: str) -> int:
        return self.det_pages if role == "det" else self.recog_pages


def render_training_data(spec: TrainSpec, role: str) -> Path:
    """The detector's pages, or the recognizer's crops (cut from other pages), once.

    Returns:
        The annotation file (COCO json, or txt lines of file and text).
    """
    import numpy as np

    from mmocr_serve_tools import synth

    folder = spec.data_dir / role
    annotations = folder / ("train.json" if role == "det" else "train.txt")
    if annotations.exists():
        return annotations
    rng = np.random.default_rng(spec.seed + (role == "recog"))
    pages = spec.pages(role)
    rendered = [_progress(f"[{role}] rendering pages", i, pages, synth.render_page(rng))
                for i in range(pages)]
    if role == "det":
        return Path(synth.write_detection_set(str(folder), rendered, "train"))
    crops = [crop for page in rendered
             for crop in synth.word_crops(rng, page, limit=spec.crops_per_page)]
    print(f"[recog] {len(crops)} word crops around jittered boxes", flush=True)
    detector = ROOT / Path(CONFIGS["det"]).with_suffix(".pth")
    if detector.is_file():  # and more, cut by the committed detector's own boxes
        some = rendered[:spec.detected_pages]
        boxes = detected_boxes(detector, some)
        crops += [crop for page, found in zip(some, boxes)
                  for crop in synth.detected_crops(rng, page, found, limit=spec.crops_per_page)]
    print(f"[recog] {len(crops)} word crops", flush=True)
    return Path(synth.write_recognition_set(str(folder), crops, "train"))


def detected_boxes(checkpoint: Path, pages: Sequence) -> List[list]:
    """Each page's boxes (eight coordinates and a score) as the detector finds them."""
    from mmocr.apis import model_inference

    from mmocr_serve.loading import load_model

    model = load_model(str(ROOT / CONFIGS["det"]), str(checkpoint))
    return [_progress("[recog] detecting words", i, len(pages),
                      model_inference(model, page.image[..., ::-1])["boundary_result"])  # BGR
            for i, page in enumerate(pages)]


def _progress(what: str, idx: int, total: int, value):
    if (idx + 1) % max(1, total // 10) == 0 or idx + 1 == total:
        print(f"{what}: {idx + 1}/{total}", flush=True)
    return value


def train(spec: TrainSpec, role: str) -> Path:
    """One model with MMOCR's training entry point; returns the final checkpoint."""
    import mmcv
    import torch
    from mmdet.apis import set_random_seed

    import mmocr
    from mmocr.apis import train_detector
    from mmocr.datasets import build_dataset
    from mmocr.models import build_detector
    from mmocr.utils import get_root_logger

    from mmocr_serve.runtime import set_cpu_memory

    # one thread each when both models train side by side, else every core
    torch.set_num_threads(1 if len(spec.models) > 1 else len(os.sched_getaffinity(0)))
    set_cpu_memory("reuse")  # as the workers do: see runtime.CPU_MEMORY
    annotations = render_training_data(spec, role)
    config = CONFIGS[role]
    cfg = mmcv.Config.fromfile(str(ROOT / config))
    iters = spec.iters(role) or cfg.runner.max_iters
    cfg.data.train.datasets[0].update(ann_file=str(annotations),
                                      img_prefix=str(annotations.with_suffix("")))
    cfg.work_dir = str(spec.work_dir / role)
    cfg.gpu_ids = [0]  # one process; mmcv's data parallel runs on the CPU without CUDA
    cfg.device = "cpu"
    cfg.seed = spec.seed
    if spec.warm_start and not spec.resume:
        cfg.load_from = str((ROOT / config).with_suffix(".pth"))
    if spec.resume:
        cfg.resume_from = str(spec.work_dir / role / "latest.pth")
        cfg.runner.type = register_cpu_runner()
    cfg.runner.max_iters = iters
    cfg.checkpoint_config.interval = min(cfg.checkpoint_config.interval, iters)
    cfg.checkpoint_config.meta = dict(mmocr_version=mmocr.__version__, CLASSES=("text",))
    cfg.custom_hooks = [dict(type="DemoProgressHook", role=role, interval=cfg.log_config.interval)]
    mmcv.mkdir_or_exist(cfg.work_dir)
    cfg.dump(os.path.join(cfg.work_dir, os.path.basename(config)))
    timestamp = time.strftime("%Y%m%d_%H%M%S")
    # as MMOCR's tools/train.py does; else train_detector's call, which passes the log
    # level where the log file goes, writes a file named INFO in the current directory
    get_root_logger(log_file=os.path.join(cfg.work_dir, f"{timestamp}.log"))
    set_random_seed(spec.seed, deterministic=False)
    register_progress_hook()

    model = build_detector(cfg.model, train_cfg=cfg.get("train_cfg"), test_cfg=cfg.get("test_cfg"))
    model.init_weights()
    datasets = [build_dataset(cfg.data.train)]
    model.CLASSES = datasets[0].CLASSES
    meta = dict(seed=spec.seed, exp_name=os.path.basename(config), config=cfg.pretty_text)
    train_detector(model, datasets, cfg, distributed=False, validate=False, timestamp=timestamp,
                   meta=meta)
    return Path(cfg.work_dir) / f"iter_{iters}.pth"


def register_cpu_runner() -> str:
    """mmcv's ``IterBasedRunner`` whose ``resume`` maps the checkpoint to the CPU: mmcv's
    own maps it to the current CUDA device, which fails on a machine without one."""
    from mmcv.runner import RUNNERS, IterBasedRunner

    if "CPUIterBasedRunner" not in RUNNERS.module_dict:
        @RUNNERS.register_module()
        class CPUIterBasedRunner(IterBasedRunner):
            def resume(self, checkpoint, resume_optimizer=True, map_location="cpu"):
                super().resume(checkpoint, resume_optimizer, map_location)

    return "CPUIterBasedRunner"


def register_progress_hook() -> None:
    from mmcv.runner import HOOKS, Hook

    if "DemoProgressHook" in HOOKS.module_dict:
        return

    @HOOKS.register_module()
    class DemoProgressHook(Hook):
        """Iteration, mean loss, elapsed time and ETA, every ``interval`` iterations."""

        def __init__(self, role: str, interval: int):
            self.role, self.interval, self.losses = role, interval, []

        def before_run(self, runner):
            self.began, self.first = time.monotonic(), runner.iter  # not 0 when resumed

        def after_train_iter(self, runner):
            self.losses.append(float(runner.outputs["log_vars"]["loss"]))
            done = runner.iter + 1
            if done % self.interval and done != runner.max_iters:
                return
            elapsed = time.monotonic() - self.began
            eta = elapsed / max(1, done - self.first) * (runner.max_iters - done)
            loss = sum(self.losses) / len(self.losses)
            self.losses = []
            print(f"[{self.role}] iter {done}/{runner.max_iters}  loss {loss:.4f}  "
                  f"elapsed {_clock(elapsed)}  eta {_clock(eta)}", flush=True)


def write_demo_pages() -> None:
    """demo/demo_page.jpg (the demo reads it) and demo/benchmark_page.jpg (20+ lines)."""
    from mmocr_serve_tools import synth

    pages = {"demo_page": synth.demo_page(), "benchmark_page": synth.benchmark_page()}
    for name, page in pages.items():
        page.save(str(ROOT / "demo" / f"{name}.jpg"))
        print(f"[demo] wrote demo/{name}.jpg: {page.lines} lines, {len(page.words)} words",
              flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


INT_OPTIONS = ("det_iters", "recog_iters", "det_pages", "recog_pages", "crops_per_page",
               "detected_pages", "seed")
PATH_OPTIONS = ("data_dir", "work_dir", "output_dir")


def child_argv(spec: TrainSpec, role: str) -> List[str]:
    """The command line of the process that trains ``role`` under ``spec``."""
    argv = [sys.executable, "-u", __file__, "--only", role, "--models", *spec.models]
    argv += ["--resume"] * spec.resume + ["--warm-start"] * spec.warm_start
    for name in INT_OPTIONS + PATH_OPTIONS:
        if getattr(spec, name) is not None:
            argv.append(f"--{name.replace('_', '-')}={getattr(spec, name)}")
    return argv


def parse_args(argv: Optional[List[str]]) -> tuple:
    defaults = TrainSpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=defaults.models)
    for names, kind in ((INT_OPTIONS, int), (PATH_OPTIONS, Path)):
        for name in names:
            parser.add_argument("--" + name.replace("_", "-"), type=kind,
                                default=getattr(defaults, name))
    parser.add_argument("--resume", action="store_true",
                        help="go on from the work dir's latest checkpoints (more iterations)")
    parser.add_argument("--warm-start", action="store_true",
                        help="start from the committed checkpoints beside the configs")
    parser.add_argument("--demo-page", action="store_true",
                        help="only (re)write the demo's pages, demo/*_page.jpg")
    parser.add_argument("--only", choices=sorted(CONFIGS), help=argparse.SUPPRESS)  # a child
    args = parser.parse_args(argv)
    spec = TrainSpec(models=tuple(args.models), det_iters=args.det_iters,
                     recog_iters=args.recog_iters, det_pages=args.det_pages,
                     recog_pages=args.recog_pages, crops_per_page=args.crops_per_page,
                     detected_pages=args.detected_pages,
                     seed=args.seed, warm_start=args.warm_start,
                     data_dir=args.data_dir.resolve(), work_dir=args.work_dir.resolve(),
                     output_dir=args.output_dir.resolve(), resume=args.resume)
    return spec, args


def main(argv: Optional[List[str]] = None) -> int:
    spec, args = parse_args(argv)
    if args.demo_page:
        write_demo_pages()
        return 0
    if args.only:
        final = train(spec, args.only)
        target = spec.output_dir / Path(CONFIGS[args.only]).with_suffix(".pth").name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, target)
        print(f"[{args.only}] wrote {target}", flush=True)
        return 0
    began = time.monotonic()
    threads = "1" if len(spec.models) > 1 else str(len(os.sched_getaffinity(0)))
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    children = [subprocess.Popen(child_argv(spec, role), env=env) for role in spec.models]
    codes = [child.wait() for child in children]
    if spec.output_dir == TrainSpec().output_dir:
        write_demo_pages()
    print(f"[train] finished in {_clock(time.monotonic() - began)}; exit codes {codes}", flush=True)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
