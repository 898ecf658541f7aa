"""Soak test: a real TorchServe on loopback under steady concurrent load, watching errors,
throughput over time and each worker's resident memory.

    python tools/soak.py [--model crnn|dbnet] [--duration 1800] [--concurrency 16]

Fails (exit 1) when any request fails or when a worker's resident memory grows by more
than --max-growth (default 10%) between the end of the warm-up and the end of the run.
Writes OUT/soak-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.benchmark import MODELS, log  # noqa: E402  (one home for the models and images)


@dataclass(frozen=True)
class SoakConfig:
    model: str = "crnn"
    duration_s: float = 1800.0
    warmup_s: float = 60.0
    window_s: float = 10.0
    concurrency: int = 16
    batch_size: int = 8
    max_growth: float = 0.10
    out_dir: Path = ROOT / "benchmarks"
    workdir: Path = ROOT / "work" / "soak"


def worker_rss_mib(pids: List[int]) -> dict:
    import psutil

    return {str(pid): round(psutil.Process(pid).memory_info().rss / 2**20, 1) for pid in pids}


def run(cfg: SoakConfig) -> dict:
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive
    from mmocr_serve_tools.loadgen import drive
    from mmocr_serve.loading import save_random_checkpoint
    from mmocr_serve_tools.server import TorchServeProcess

    config, image_path = MODELS[cfg.model]
    store = cfg.workdir / "model-store"
    checkpoint = save_random_checkpoint(config, cfg.workdir / f"{cfg.model}.pth")
    build_archive(ArchiveSpec.flat(config=config, checkpoint=str(checkpoint), output_folder=str(store),
                              model_name=cfg.model, batch_size=cfg.batch_size, force=True))
    image = (ROOT / image_path).read_bytes()
    windows, began = [], time.monotonic()
    with TorchServeProcess(model_store=store, models=[f"{cfg.model}={cfg.model}.mar"],
                           workdir=cfg.workdir / "torchserve") as server:
        url = f"{server.inference_url}/predictions/{cfg.model}"
        log(f"soak: {cfg.concurrency} clients on {url} for {cfg.duration_s:.0f} s "
            f"(warm-up {cfg.warmup_s:.0f} s)")
        baseline = None
        while time.monotonic() - began < cfg.duration_s:
            result = drive(url, [image], cfg.concurrency, duration_s=cfg.window_s)
            elapsed = time.monotonic() - began
            rss = worker_rss_mib(server.worker_pids(cfg.model))
            if baseline is None and elapsed >= cfg.warmup_s:
                baseline = rss
            windows.append({"t_s": round(elapsed, 1), "window_s": round(result.elapsed_s, 2),
                            **result.summary(), "worker_rss_mib": rss})
            log(f"  t={elapsed:6.0f} s  {result.throughput:7.2f} images/s  errors "
                f"{result.errors}  p99 {result.percentile(99):.0f} ms  worker RSS {rss} MiB")
    return verdict(cfg, windows, baseline)


def verdict(cfg: SoakConfig, windows: List[dict], baseline: Optional[dict]) -> dict:
    final = windows[-1]["worker_rss_mib"]
    baseline = baseline or windows[0]["worker_rss_mib"]
    growth = {pid: (final[pid] - baseline[pid]) / baseline[pid] for pid in final if pid in baseline}
    errors = sum(w["errors"] for w in windows)
    requests = sum(w["requests"] for w in windows)
    problems = []
    if set(final) != set(baseline):
        problems.append(f"the workers changed: {sorted(baseline)} -> {sorted(final)}")
    problems += [f"worker {pid} RSS grew {g:.1%} (limit {cfg.max_growth:.0%})"
                 for pid, g in growth.items() if g > cfg.max_growth]
    if errors:
        problems.append(f"{errors} of {requests} requests failed")
    return {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
            "requests": requests, "errors": errors,
            "images_per_s": round((requests - errors) / sum(w["window_s"] for w in windows), 2),
            "rss_baseline_mib": baseline, "rss_final_mib": final,
            "rss_growth": {pid: round(g, 4) for pid, g in growth.items()},
            "problems": problems, "windows": windows}


def parse_args(argv: Optional[List[str]] = None) -> SoakConfig:
    d = SoakConfig()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default=d.model)
    parser.add_argument("--duration", type=float, default=d.duration_s, help="seconds in all")
    parser.add_argument("--warmup", type=float, default=d.warmup_s,
                        help="seconds before the memory baseline is taken")
    parser.add_argument("--window", type=float, default=d.window_s, help="seconds per sample")
    parser.add_argument("--concurrency", type=int, default=d.concurrency)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--max-growth", type=float, default=d.max_growth)
    parser.add_argument("--out-dir", type=Path, default=d.out_dir)
    parser.add_argument("--workdir", type=Path, default=d.workdir)
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.duration:
        parser.error("--warmup must be positive and shorter than --duration")
    return SoakConfig(model=args.model, duration_s=args.duration, warmup_s=args.warmup,
                      window_s=args.window, concurrency=args.concurrency,
                      batch_size=args.batch_size, max_growth=args.max_growth,
                      out_dir=args.out_dir, workdir=args.workdir)


def main(argv: Optional[List[str]] = None) -> int:
    cfg = parse_args(argv)
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    report = run(cfg)
    out = cfg.out_dir / f"soak-{cfg.model}.json"
    out.write_text(json.dumps(report, indent=1))
    log(f"{report['requests']} requests, {report['errors']} errors, {report['images_per_s']} "
        f"images/s; worker RSS {report['rss_baseline_mib']} -> {report['rss_final_mib']} MiB "
        f"(growth {report['rss_growth']}); wrote {out}")
    for problem in report["problems"]:
        log(f"FAIL: {problem}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
