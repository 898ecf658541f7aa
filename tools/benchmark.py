"""Served throughput and latency against the same model in-process, in one run.

For each model: make (or take) a checkpoint, build one archive per batch size (and per
``--variant``), measure in-process throughput on the same image (the ceiling), then start
a real TorchServe on loopback ports and drive each archive with concurrent clients. Writes
``OUT/NAME.json``, ``OUT/NAME.md`` (the tables kept in ``benchmarks/``, described in
``docs/benchmarks.md``) and ``OUT/NAME.png`` (throughput and p99 latency against
concurrency); NAME is ``--name``, else ``cpu`` or ``gpu``.

    python tools/benchmark.py [--duration 15] [--batch-sizes 1 4 8] [--concurrency 1 4 8 16]

``--shared`` runs the shared-CPU study instead: the demo recognizer, detector and
end-to-end archive quiet, beside busy neighbour processes and inside the serving container
under ``docker run --cpus``, each with the default settings and against libgomp's spinning
wait policy, one pinned thread and the ONNX Runtime recognizer (``benchmarks/cpu-shared.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmocr_serve.metrics import STAGES  # noqa: E402
from mmocr_serve_tools.loadgen import log, machine_description  # noqa: E402

# name -> (config, image sent to it): shipped configs with random weights, and the trained
# demo pair end to end (checkpoints beside the configs) on a rendered page of 20+ lines
MODELS = {
    "dbnet": ("textdet/dbnet/dbnet_r18_fpnc_1200e_icdar2015.py", "demo/demo_text_det.jpg"),
    "crnn": ("textrecog/crnn/crnn_academic_dataset.py", "demo/demo_text_recog.jpg"),
    "ocr": (("demo/models/dbnet_demo.py", "demo/models/crnn_demo.py"), "demo/benchmark_page.jpg"),
}


@dataclass(frozen=True)
class BenchmarkConfig:
    models: Sequence[str] = ("dbnet", "crnn")
    batch_sizes: Sequence[int] = (1, 4, 8)
    concurrency: Sequence[int] = (1, 4, 8, 16)
    duration_s: float = 15.0
    min_images: int = 30  # a setting runs longer than duration_s until this many could finish
    rounds: int = 2  # windows per setting, taken in turn with the other archives' windows
    max_batch_delay_ms: int = 20
    out_dir: Path = ROOT / "benchmarks"
    workdir: Path = ROOT / "work" / "benchmark"
    thread_study: bool = True  # CPU only: workers x threads settings, for the last model
    name: Optional[str] = None  # the results' file name: OUT/NAME.{md,json,png}; default cpu or gpu
    # archive settings to compare with the defaults, each served beside them: ("KEY=VALUE",)
    variants: Sequence[str] = ()
    shared: bool = False  # the shared-CPU study instead (``shared_cpu_study``)


def variant_settings(variant: str) -> dict:
    """``"cpu_layout=contiguous"`` -> ``{"cpu_layout": "contiguous"}`` (ArchiveSpec fields)."""
    key, _, value = variant.partition("=")
    return {key: int(value) if value.isdigit() else value}


def labels(cfg: BenchmarkConfig, name: str) -> Dict[str, tuple]:
    """Archive label -> (batch size, variant or ""): ``NAME_bB`` and ``NAME_bB-KEY-VALUE``."""
    return {f"{name}_b{batch}" + (f"-{v.replace('=', '-')}" if v else ""): (batch, v)
            for batch in cfg.batch_sizes for v in ("", *cfg.variants)}


def build_archives(cfg: BenchmarkConfig, name: str, store: Path) -> None:
    """One archive per batch size and variant (see ``labels``)."""
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive
    from mmocr_serve.loading import save_random_checkpoint

    config = MODELS[name][0]
    if isinstance(config, tuple):  # the demo pair, with its trained checkpoints
        models = dict(zip(("config", "recog_config"), (str(ROOT / c) for c in config)))
        models.update(checkpoint=trained(config[0]), recog_checkpoint=trained(config[1]))
    else:
        checkpoint = save_random_checkpoint(config, cfg.workdir / f"{name}.pth")
        models = dict(config=config, checkpoint=str(checkpoint))
    for label, (batch, variant) in labels(cfg, name).items():
        settings = variant_settings(variant) if variant else {}
        build_archive(ArchiveSpec.flat(**models, **settings, output_folder=str(store),
                                  model_name=label, batch_size=batch,
                                  max_batch_delay_ms=cfg.max_batch_delay_ms, force=True))


def trained(config: str) -> str:
    return str((ROOT / config).with_suffix(".pth"))


def readtext_in_process(cfg: BenchmarkConfig, name: str, seconds: float) -> tuple:
    """MMOCR 0.6.3's own ``readtext`` on the page, one call after another.

    Returns:
        ({1: images/s}, p50 ms per call).
    """
    from mmocr_serve_tools.deployment_check import readtext_reference

    det, recog = MODELS[name][0]
    readtext = readtext_reference(str(ROOT / det), trained(det), str(ROOT / recog), trained(recog))
    page = str(ROOT / MODELS[name][1])
    readtext(page)  # warm-up
    times, began = [], time.perf_counter()
    while time.perf_counter() - began < seconds or len(times) < 3:
        start = time.perf_counter()
        readtext(page)
        times.append(time.perf_counter() - start)
    rate, p50 = len(times) / sum(times), statistics.median(times) * 1000
    log(f"  in-process MMOCR.readtext: {rate:.2f} images/s, p50 {p50:.0f} ms")
    return {1: rate}, p50


def in_process(cfg: BenchmarkConfig, archive: Path, image: bytes, device: str) -> Dict[int, float]:
    """Images/s of the engine in this process: one image per call, then B per call.

    The engine is loaded as a worker of the largest batch size is, with a worker's process
    settings, so it runs the same forward passes.
    """
    from mmocr_serve.engine import load_engine
    from mmocr_serve.errors import ServeError
    from mmocr_serve.runtime import RuntimeOptions, apply_process_settings

    unpacked = cfg.workdir / "unpacked" / archive.stem
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(unpacked)
    options = RuntimeOptions(batch_size=max(cfg.batch_sizes))
    apply_process_settings(options, device)
    engine = load_engine(unpacked, device, options)
    def run_calls(batch: int, seconds: float) -> tuple:
        payloads = [image] * batch
        done, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            outcomes = engine.predict_payloads(payloads)
            failed = [o for o in outcomes if isinstance(o, ServeError)]
            if failed:
                raise RuntimeError(f"in-process inference failed: {failed[0].message}")
            done += batch
        return done, time.perf_counter() - began

    # a first timing of one image per call sets the time per setting; then the batch
    # sizes take turns, ``rounds`` windows each, as the served archives do
    done, took = run_calls(1, 1.0)
    seconds = setting_seconds(cfg, done / took)
    totals = {batch: [0, 0.0] for batch in cfg.batch_sizes}
    for turn in range(cfg.rounds):
        for batch in round_order(cfg.batch_sizes, turn):
            done, took = run_calls(batch, seconds / cfg.rounds)
            totals[batch][0] += done
            totals[batch][1] += took
    rates = {batch: done / took for batch, (done, took) in totals.items()}
    for batch, rate in rates.items():
        log(f"  in-process, {batch} image(s) per call: {rate:.2f} images/s")
    del engine
    gc.collect()
    return rates


def round_order(settings: Sequence, turn: int) -> list:
    """The settings' order in round ``turn``: forwards, then backwards the next round
    (A B C, C B A, ...), so that a machine whose speed drifts steadily through a run
    favours no setting, as a fixed order favours the last when the machine speeds up."""
    return list(settings) if turn % 2 == 0 else list(reversed(settings))


def setting_seconds(cfg: BenchmarkConfig, rate: Optional[float]) -> float:
    """How long to measure one setting: ``duration_s``, or long enough for ``min_images``
    at ``rate`` images/s (a slow detector finishes only a few images in 15 s)."""
    return max(cfg.duration_s, cfg.min_images / rate) if rate else cfg.duration_s


def serve_and_drive(cfg: BenchmarkConfig, store: Path, labels: Sequence[str], image: bytes,
                    clients_levels: Sequence[int], seconds: float, rounds: int = 1) -> tuple:
    """Start one TorchServe per archive, one after another (so each worker measures its
    batching while the others are idle), then at each concurrency drive the archives in
    turn, ``rounds`` windows each, in ``round_order``: a machine that slows down or speeds
    up during the run (a shared VM does) weighs on every archive alike.

    Returns:
        ({label: one LoadResult per level}, {label: ``handler_report`` of its windows}).
    """
    from mmocr_serve_tools.loadgen import LoadResult, drive
    from mmocr_serve_tools.server import TorchServeProcess

    with contextlib.ExitStack() as stack:
        urls, servers = {}, {}
        for label in labels:
            log(f"  starting TorchServe with {label}.mar")
            workdir = cfg.workdir / f"torchserve-{label}"
            shutil.rmtree(workdir / "logs", ignore_errors=True)
            servers[label] = stack.enter_context(TorchServeProcess(
                model_store=store, models=[f"{label}={label}.mar"], workdir=workdir))
            urls[label] = f"{servers[label].inference_url}/predictions/{label}"
        results: Dict[str, list] = {label: [] for label in labels}
        measured: Dict[str, Dict[tuple, float]] = {label: {} for label in labels}
        for clients in clients_levels:
            for label in labels:
                drive(urls[label], [image], clients, duration_s=60, max_requests=clients)
            windows: Dict[str, list] = {label: [] for label in labels}
            for turn in range(rounds):
                for label in round_order(labels, turn):
                    before = servers[label].settled_metrics()
                    windows[label].append(drive(urls[label], [image], clients,
                                                duration_s=seconds / rounds))
                    add_metrics(measured[label], before, servers[label].settled_metrics())
            for label in labels:
                results[label].append(LoadResult.combined(windows[label]))
    return results, {label: handler_report(measured[label]) for label in labels}


def add_metrics(into: Dict[tuple, float], before: Dict[tuple, float],
                after: Dict[tuple, float]) -> None:
    for key, value in after.items():
        into[key] = into.get(key, 0.0) + value - before.get(key, 0.0)


def handler_report(samples: Dict[tuple, float]) -> dict:
    """The handler's metrics over the measured windows: ms per request by stage, and
    images per forward pass."""
    from mmocr_serve_tools.server import metric_sum

    requests = metric_sum(samples, "mmocr_requests_total") or 1.0
    passes = metric_sum(samples, "mmocr_forward_passes_total") or 1.0
    return {"requests": int(requests),
            "ms_per_request": {stage: round(metric_sum(
                samples, "mmocr_stage_milliseconds_total", Stage=stage) / requests, 3)
                for stage in STAGES},
            "images_per_pass": round(metric_sum(samples, "mmocr_forward_images_total") / passes, 2)}


def served(cfg: BenchmarkConfig, store: Path, name: str, image: bytes,
           seconds: float) -> tuple:
    archives = labels(cfg, name)
    results, reports = serve_and_drive(cfg, store, list(archives), image, cfg.concurrency,
                                       seconds, rounds=cfg.rounds)
    rows, handler = [], {}
    for label, (batch, variant) in archives.items():
        handler[label] = reports[label]
        log(f"  {label} worker: ms per request by stage {reports[label]['ms_per_request']}, "
            f"images per pass {reports[label]['images_per_pass']}")
        for result in results[label]:
            row = {"model": name, "batch_size": batch, "variant": variant, **result.summary()}
            rows.append(row)
            log(f"  served, {label}, {result.concurrency} clients: "
                f"{row['images_per_s']:.2f} images/s, p50 {row['p50_ms']:.0f} ms, "
                f"p99 {row['p99_ms']:.0f} ms, errors {row['errors']}")
    return rows, handler


def thread_study(cfg: BenchmarkConfig, name: str, store: Path) -> List[dict]:
    """Served images/s for workers x torch threads per worker, batch size 1, 8 clients."""
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive

    cores = len(os.sched_getaffinity(0))
    config, image_path = MODELS[name]
    image = (ROOT / image_path).read_bytes()
    settings = {f"{name}_w{workers}t{threads}": (workers, threads)
                for workers, threads in ((1, cores), (cores, 1), (cores, cores))}
    for label, (workers, threads) in settings.items():
        build_archive(ArchiveSpec.flat(config=config, checkpoint=str(cfg.workdir / f"{name}.pth"),
                                  output_folder=str(store), model_name=label, workers=workers,
                                  cpu_threads=threads, force=True))
    results, _ = serve_and_drive(cfg, store, list(settings), image, [8], cfg.duration_s,
                                 rounds=cfg.rounds)
    rows = []
    for label, (workers, threads) in settings.items():
        (result,) = results[label]
        rows.append({"model": name, "workers": workers, "threads": threads, **result.summary()})
        log(f"  {workers} worker(s) x {threads} thread(s): {result.throughput:.2f} images/s, "
            f"p99 {result.percentile(99):.0f} ms")
    return rows


def run(cfg: BenchmarkConfig) -> dict:
    import torch

    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    store = cfg.workdir / "model-store"
    report = {"machine": machine_description(), "config": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}, "models": {}}
    report["config"]["round_order"] = "forwards then backwards"  # see ``round_order``
    log(f"machine: {report['machine']}")
    for name in cfg.models:
        image = (ROOT / MODELS[name][1]).read_bytes()
        log(f"{name}: building {len(labels(cfg, name))} archives")
        build_archives(cfg, name, store)
        log(f"{name}: in-process throughput")
        extra = {}
        if isinstance(MODELS[name][0], tuple):
            ceiling, extra["in_process_p50_ms"] = readtext_in_process(cfg, name, cfg.duration_s)
        else:
            ceiling = in_process(cfg, store / f"{name}_b1.mar", image, device)
        seconds = setting_seconds(cfg, ceiling[1])
        log(f"{name}: served, {seconds:.0f} s per setting")
        rows, handler = served(cfg, store, name, image, seconds)
        report["models"][name] = {"in_process": ceiling, "served": rows, "seconds": seconds,
                                  "handler": handler, **extra}
    single = [name for name in cfg.models if not isinstance(MODELS[name][0], tuple)]
    if device == "cpu" and cfg.thread_study and single:
        name = single[-1]
        log(f"{name}: workers x threads on {report['machine']['cores']} cores")
        report["threads"] = thread_study(cfg, name, store)
    return report


def floors(report: dict) -> List[str]:
    """PASS/FAIL lines for the floors, and the ratios a reader compares (batch sizes with
    batch size 1, variants with the defaults), all from this run."""
    lines = []
    for name, data in report["models"].items():
        per_image = data["in_process"][min(data["in_process"])]
        rows = [r for r in data["served"] if not r.get("variant")]
        best = max(rows, key=lambda r: r["images_per_s"])
        ratio = best["images_per_s"] / per_image
        lines.append(f"{'PASS' if ratio >= 0.8 else 'FAIL'} {name}: best served "
                     f"{best['images_per_s']:.2f} images/s (batch {best['batch_size']}, "
                     f"{best['concurrency']} clients) / in-process {per_image:.2f} = {ratio:.2f} "
                     f"(floor 0.8)")
        share = data["handler"][f"{name}_b1"]["ms_per_request"]["handler"]
        lines.append(f"{'PASS' if share <= 1.0 else 'FAIL'} {name}: the handler's own share "
                     f"at batch size 1 is {share:.3f} ms per request (floor 1 ms)")
        by = {(r["batch_size"], r.get("variant", ""), r["concurrency"]): r for r in data["served"]}
        for (batch, variant, clients), row in sorted(by.items()):
            base_key = (batch, "", clients) if variant else (1, "", clients)
            if base_key == (batch, variant, clients) or base_key not in by:
                continue
            rate, base = row["images_per_s"], by[base_key]["images_per_s"]
            than = "the defaults" if variant else "batch 1"
            lines.append(f"{name}: batch {batch}{f' {variant}' if variant else ''} at {clients} "
                         f"clients {rate:.2f} vs {than} {base:.2f} images/s (x{rate / base:.2f}"
                         f"{window_spread(row, by[base_key])})")
    return lines


def window_spread(row: dict, base: dict) -> str:
    """The ratio window by window: the windows of one round ran back to back, so their
    spread shows how far the machine's drift moves a ratio."""
    pairs = [(a, b) for a, b in zip(row.get("window_images_per_s", []),
                                    base.get("window_images_per_s", [])) if b]
    if len(pairs) < 2:
        return ""
    ratios = [a / b for a, b in pairs]
    return f"; window by window x{min(ratios):.2f} to x{max(ratios):.2f}"


def markdown(report: dict) -> str:
    m = report["machine"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB"
           + (f", GPU {m['gpu']}" if m["gpu"] else ", no GPU")
           + f"; torch {m['torch']}, Python {m['python']}. "
           f"Max batch delay {report['config']['max_batch_delay_ms']} ms, one worker per model, "
           f"one TorchServe per archive; the archives are driven in turn "
           f"({report['config']['round_order']} in alternate rounds), "
           f"{report['config']['rounds']} windows per setting.", ""]
    for name, data in report["models"].items():
        per_image = data["in_process"][min(data["in_process"])]
        inproc = ", ".join(f"{b} per call {r:.2f}" for b, r in data["in_process"].items())
        if "in_process_p50_ms" in data:  # end to end: the baseline is MMOCR's readtext
            inproc = (f"MMOCR.readtext, one page per call, {per_image:.2f} "
                      f"(p50 {data['in_process_p50_ms']:.0f} ms)")
        out += [f"**{name}** (image `{MODELS[name][1]}`, {data['seconds']:.0f} s per setting); "
                f"in-process images/s: {inproc}", "",
                "Handler metrics over the measured windows, ms per request by stage:", "",
                "| archive | " + " | ".join(STAGES) + " | images per forward pass |",
                "|---|" + "---:|" * (len(STAGES) + 1)]
        for label, h in data["handler"].items():
            out.append(f"| {label} | " + " | ".join(f"{h['ms_per_request'][s]:.2f}"
                                                    for s in STAGES)
                       + f" | {h['images_per_pass']:.2f} |")
        out += ["",
                "| batch size | variant | clients | images/s | served / in-process | p50 ms "
                "| p90 ms | p99 ms | errors |",
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in data["served"]:
            out.append(f"| {r['batch_size']} | {r.get('variant') or 'defaults'} | "
                       f"{r['concurrency']} | {r['images_per_s']:.2f} | "
                       f"{r['images_per_s'] / per_image:.2f} | {r['p50_ms']:.0f} | "
                       f"{r['p90_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} |")
        out.append("")
    if report.get("threads"):
        out += [f"**Workers x torch threads** ({report['threads'][0]['model']}, batch size 1, "
                f"8 clients, {m['cores']} cores):", "",
                "| workers | threads each | images/s | p99 ms |", "|---:|---:|---:|---:|"]
        out += [f"| {r['workers']} | {r['threads']} | {r['images_per_s']:.2f} | {r['p99_ms']:.0f} |"
                for r in report["threads"]]
        out.append("")
    out += ["```", *floors(report), "```", ""]
    return "\n".join(out)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["models"])
    fig, axes = plt.subplots(2, len(names), figsize=(5.5 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        data = report["models"][name]
        for batch, variant in sorted({(r["batch_size"], r.get("variant", "")) for r in data["served"]}):
            rows = [r for r in data["served"]
                    if (r["batch_size"], r.get("variant", "")) == (batch, variant)]
            batch = f"{batch} {variant}".strip()
            clients = [r["concurrency"] for r in rows]
            axes[0][col].plot(clients, [r["images_per_s"] for r in rows], "o-",
                              label=f"served, batch {batch}")
            axes[1][col].plot(clients, [r["p99_ms"] for r in rows], "o-", label=f"batch {batch}")
        axes[0][col].axhline(data["in_process"][min(data["in_process"])], color="k",
                             linestyle="--", label="in-process, 1 per call")
        axes[0][col].set(title=f"{name}: throughput", xlabel="concurrent clients",
                         ylabel="images/s")
        axes[1][col].set(title=f"{name}: p99 latency", xlabel="concurrent clients", ylabel="ms")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# The shared-CPU study (``--shared``): the demo models, each setting served by a
# TorchServe (or a container) of its own. Setting -> (archive settings, worker environment).
SPIN = {"OMP_WAIT_POLICY": ""}  # libgomp's default (spin, then sleep): the archives' own
# sitecustomize keeps a value that is set, and libgomp takes an empty one for unset
SHARED_SETTINGS = {
    "default": ({}, {}),
    "spin": ({}, SPIN),
    "1 thread": ({"cpu_threads": 1}, {}),
    "onnxruntime": ({"backend": "onnxruntime"}, {}),
}
SHARED_MODELS = {  # label -> (archive sources, image, seconds per window at --duration 15)
    "crnn_b1": (dict(config="demo/models/crnn_demo.py", batch_size=1), "demo/demo_text_recog.jpg", 8),
    "dbnet_b1": (dict(config="demo/models/dbnet_demo.py"), "demo/demo_text_det.jpg", 15),
    "ocr": (dict(config="demo/models/dbnet_demo.py", recog_config="demo/models/crnn_demo.py"),
            "demo/demo_page.jpg", 15),
}
CONTAINER_SETTINGS = {  # docker run --cpus N with the serving image's defaults, and against them
    "default": {},
    "1 thread": {"MMOCR_SERVE_CPU_THREADS": "1"},
    "2 threads, spin": {"MMOCR_SERVE_CPU_THREADS": "2", **SPIN},
}


def shared_archives(store: Path, setting: str) -> List[str]:
    """The demo archives of one setting in ``store``; ``NAME=FILE`` for TorchServe."""
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive

    settings, _ = SHARED_SETTINGS[setting]
    models = []
    for label, (sources, _, _) in SHARED_MODELS.items():
        if settings.get("backend") and label.startswith("dbnet"):
            continue  # detectors stay in torch
        paths = {key: str(ROOT / value) for key, value in sources.items() if key.endswith("config")}
        paths.update({key.replace("config", "checkpoint"): trained(value)
                      for key, value in sources.items() if key.endswith("config")})
        build_archive(ArchiveSpec.flat(**paths, **settings, output_folder=str(store), model_name=label,
                                  batch_size=sources.get("batch_size", 1), force=True))
        models.append(f"{label}={label}.mar")
    return models


def drive_once(url: str, label: str, seconds: float):
    """One client, one request after another, for ``seconds`` (and at least 3 requests).

    Returns:
        Its ``LoadResult``.
    """
    from mmocr_serve_tools.loadgen import LoadResult, drive

    image = (ROOT / SHARED_MODELS[label][1]).read_bytes()
    drive(url, [image], 1, duration_s=60, max_requests=2)  # warm-up
    windows = [drive(url, [image], 1, duration_s=seconds)]
    if windows[0].ok < 3:
        windows.append(drive(url, [image], 1, duration_s=600, max_requests=3 - windows[0].ok))
    result = LoadResult.combined(windows)
    if result.errors:
        raise RuntimeError(f"{url}: {result.statuses}")
    return result


def window_s(cfg: BenchmarkConfig, label: str) -> float:
    return SHARED_MODELS[label][2] * cfg.duration_s / BenchmarkConfig.duration_s


def shared_cpu_study(cfg: BenchmarkConfig) -> dict:
    """p50/p99 of each demo archive and setting, quiet and beside busy neighbours."""
    from mmocr_serve_tools.loadgen import cpu_burners
    from mmocr_serve_tools.server import TorchServeProcess

    cores = len(os.sched_getaffinity(0))
    conditions = {"quiet": 0, "1 burner": 1, f"{cores} burners": cores}
    rows = []
    with contextlib.ExitStack() as stack:
        servers = {}
        for setting, (_, env) in SHARED_SETTINGS.items():
            store = cfg.workdir / "shared" / setting.replace(" ", "-")
            models = shared_archives(store, setting)
            log(f"  starting TorchServe for {setting}: {', '.join(models)}")
            servers[setting] = stack.enter_context(TorchServeProcess(
                model_store=store, models=models, env=env,
                workdir=cfg.workdir / "shared" / f"torchserve-{setting.replace(' ', '-')}"))
        for turn, (condition, burners) in enumerate(conditions.items()):
            with cpu_burners(burners):
                for label in SHARED_MODELS:
                    for setting in round_order(list(servers), turn):
                        if f"{label}={label}.mar" not in servers[setting].models:
                            continue
                        url = f"{servers[setting].inference_url}/predictions/{label}"
                        row = {"model": label, "setting": setting, "condition": condition,
                               "where": "host",
                               **drive_once(url, label, window_s(cfg, label)).summary()}
                        rows.append(row)
                        log(f"  {condition}, {label}, {setting}: p50 {row['p50_ms']:.0f} ms, "
                            f"p99 {row['p99_ms']:.0f} ms ({row['requests']} requests)")
    return {"machine": machine_description(), "rows": rows + container_study(cfg)}


def container_study(cfg: BenchmarkConfig, image: str = "mmocr-serve:cpu") -> List[dict]:
    """The serving image under ``docker run --cpus 1`` and ``--cpus 2``, each setting of
    ``CONTAINER_SETTINGS`` in a container of its own; none where the image is absent."""
    import subprocess

    from mmocr_serve_tools.server import free_port

    docker = "/usr/bin/docker"  # Debian's client, as the image tests use (tests/dockerd.py)
    if not Path(docker).exists() or subprocess.run([docker, "image", "inspect", image],
                                                   capture_output=True).returncode != 0:
        log(f"  no {image} image (bash scripts/test.sh -m docker builds it): containers skipped")
        return []
    store = cfg.workdir / "shared" / "default"
    rows = []
    for cpus in ("1", "2"):
        names = {}
        try:
            for setting, env in CONTAINER_SETTINGS.items():  # all up before any measurement
                port = free_port()
                names[setting] = (f"mmocr-serve-bench-{port}", f"http://127.0.0.1:{port}")
                subprocess.run([docker, "run", "-d", "--rm", "--name", names[setting][0],
                                "--cpus", cpus, "-p", f"127.0.0.1:{port}:8080",
                                *[f"-e{k}={v}" for k, v in env.items()], "--mount",
                                f"type=bind,source={store},target=/home/model-server/"
                                "model-store,readonly", image], check=True, capture_output=True)
            for name, base in names.values():
                wait_answering(base, list(SHARED_MODELS))
            rows += container_rounds(cfg, docker, cpus, names)
        finally:
            for name, _ in names.values():
                subprocess.run([docker, "rm", "-f", name], capture_output=True)
    return rows


def container_rounds(cfg: BenchmarkConfig, docker: str, cpus: str, names: dict) -> List[dict]:
    """Each model in each container, ``cfg.rounds`` windows each, the containers taking
    turns in ``round_order`` (containers started one after another warm up unevenly)."""
    from mmocr_serve_tools.loadgen import LoadResult

    rows = []
    for label in SHARED_MODELS:
        windows: Dict[str, list] = {setting: [] for setting in names}
        for turn in range(cfg.rounds):
            for setting in round_order(list(names), turn):
                url = f"{names[setting][1]}/predictions/{label}"
                windows[setting].append(drive_once(url, label, window_s(cfg, label) / cfg.rounds))
        for setting, results in windows.items():
            row = {"model": label, "setting": setting, "condition": f"--cpus {cpus}",
                   "where": "container",
                   "threads": container_threads(docker, names[setting][0]).get(label),
                   **LoadResult.combined(results).summary()}
            rows.append(row)
            log(f"  --cpus {cpus}, {label}, {setting} ({row['threads']}): "
                f"p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms")
    return rows


def wait_answering(base: str, labels: Sequence[str], timeout_s: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    for label in labels:
        body = (ROOT / SHARED_MODELS[label][1]).read_bytes()
        while True:
            try:
                request = urllib.request.Request(f"{base}/predictions/{label}", data=body,
                                                 headers={"Content-Type": "application/octet-stream"})
                with urllib.request.urlopen(request, timeout=60):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{base}: {label} did not answer in {timeout_s} s")
                time.sleep(2)


def container_threads(docker: str, name: str) -> Dict[str, str]:
    """Each model's start-up line in the container's log: its threads and where from."""
    import re
    import subprocess

    logs = subprocess.run([docker, "logs", name], capture_output=True, text=True)
    found = {}
    for line in (logs.stdout + logs.stderr).splitlines():
        match = re.search(r"W-\d+-(\S+?)_[\d.]+-stdout.*model ready on cpu \("
                          r"(\d+ torch threads \(.*?\))", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def shared_p50(rows: List[dict], model: str, setting: str, condition: str) -> Optional[float]:
    found = [r["p50_ms"] for r in rows
             if (r["model"], r["setting"], r["condition"]) == (model, setting, condition)]
    return found[0] if found else None


def shared_floors(report: dict) -> List[str]:
    """PASS/FAIL lines for the shared-CPU floors, and the ratios they rest on."""
    rows, lines = report["rows"], []
    cores = report["machine"]["cores"]
    quiet = shared_p50(rows, "crnn_b1", "default", "quiet")
    loaded = shared_p50(rows, "crnn_b1", "default", f"{cores} burners")
    if quiet and loaded:
        lines.append(f"{'PASS' if loaded <= 2 * quiet else 'FAIL'} crnn_b1: p50 with a burner "
                     f"per core {loaded:.0f} ms / quiet {quiet:.0f} ms = x{loaded / quiet:.2f} "
                     "(floor x2)")
    for model in SHARED_MODELS:
        pinned = shared_p50(rows, model, "1 thread", "--cpus 1")
        for setting in CONTAINER_SETTINGS:
            mine = shared_p50(rows, model, setting, "--cpus 1")
            if setting != "1 thread" and mine and pinned:
                verdict = "" if setting != "default" else (
                    "PASS " if mine <= 1.1 * pinned else "FAIL ")
                lines.append(f"{verdict}{model}: --cpus 1, {setting} p50 {mine:.0f} ms / pinned "
                             f"to 1 thread {pinned:.0f} ms = x{mine / pinned:.2f}"
                             + (" (floor x1.1: the same setting, within noise)" if verdict else ""))
        for condition in ("quiet", "1 burner", f"{cores} burners"):
            ours, spin = (shared_p50(rows, model, s, condition) for s in ("default", "spin"))
            if ours and spin:
                lines.append(f"{model}: {condition}, OMP_WAIT_POLICY=PASSIVE p50 {ours:.0f} ms "
                             f"vs libgomp's default {spin:.0f} ms (x{ours / spin:.2f})")
            onnx = shared_p50(rows, model, "onnxruntime", condition)
            if ours and onnx and condition != f"{cores} burners":
                lines.append(f"{model}: {condition}, ONNX Runtime recognizer p50 {onnx:.0f} ms vs "
                             f"torch {ours:.0f} ms: x{ours / onnx:.2f} faster")
    return lines


def shared_markdown(report: dict) -> str:
    m = report["machine"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; torch "
           f"{m['torch']}, Python {m['python']}. One client, one request after another; each "
           "setting served by a TorchServe of its own (host) or a container of its own "
           "(`docker run --cpus N`, the serving image). A burner is a Python busy loop.", "",
           "| archive | setting | where | condition | requests | p50 ms | p99 ms | p50 / quiet |",
           "|---|---|---|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        base = shared_p50(report["rows"], r["model"], r["setting"], "quiet")
        ratio = f"x{r['p50_ms'] / base:.2f}" if base and r["where"] == "host" else ""
        setting = r["setting"] + (f" ({r['threads']})" if r.get("threads") else "")
        out.append(f"| {r['model']} | {setting} | {r['where']} | {r['condition']} | "
                   f"{r['requests']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {ratio} |")
    out += ["", "```", *shared_floors(report), "```", ""]
    return "\n".join(out)


def parse_args(argv: Optional[List[str]] = None) -> BenchmarkConfig:
    defaults = BenchmarkConfig()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=defaults.models)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=defaults.batch_sizes)
    parser.add_argument("--concurrency", nargs="+", type=int, default=defaults.concurrency)
    parser.add_argument("--duration", type=float, default=defaults.duration_s,
                        help="seconds measured per setting")
    parser.add_argument("--min-images", type=int, default=defaults.min_images,
                        help="measure a setting until this many images could finish, if longer")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="windows per setting, taken in turn across the archives")
    parser.add_argument("--max-batch-delay", type=int, default=defaults.max_batch_delay_ms)
    parser.add_argument("--out-dir", type=Path, default=defaults.out_dir)
    parser.add_argument("--workdir", type=Path, default=defaults.workdir)
    parser.add_argument("--no-thread-study", action="store_true",
                        help="skip the CPU workers x threads comparison")
    parser.add_argument("--name", help="write OUT/NAME.md, .json and .png (default: cpu or gpu)")
    parser.add_argument("--shared", action="store_true",
                        help="instead: the demo models quiet, beside busy neighbours and under "
                        "docker run --cpus (benchmarks/cpu-shared.md)")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                        help="also serve archives with this converter setting (e.g. "
                        "cpu_layout=contiguous) beside the defaults; repeatable")
    args = parser.parse_args(argv)
    if 1 not in args.batch_sizes:
        parser.error("--batch-sizes must include 1 (the baseline)")
    return BenchmarkConfig(models=tuple(args.models), batch_sizes=tuple(sorted(args.batch_sizes)),
                           concurrency=tuple(sorted(args.concurrency)), duration_s=args.duration,
                           min_images=args.min_images, rounds=args.rounds,
                           max_batch_delay_ms=args.max_batch_delay, out_dir=args.out_dir.resolve(),
                           workdir=args.workdir.resolve(), thread_study=not args.no_thread_study,
                           name=args.name, variants=tuple(args.variant), shared=args.shared)


def main(argv: Optional[List[str]] = None) -> int:
    cfg = parse_args(argv)
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.shared:
        report = shared_cpu_study(cfg)
        kind = cfg.name or "cpu-shared"
        (cfg.out_dir / f"{kind}.json").write_text(json.dumps(report, indent=1))
        (cfg.out_dir / f"{kind}.md").write_text(shared_markdown(report))
        print(shared_markdown(report))
        log(f"wrote {cfg.out_dir / kind}.md and .json")
        return 0
    report = run(cfg)
    kind = cfg.name or ("gpu" if report["machine"]["gpu"] else "cpu")
    (cfg.out_dir / f"{kind}.json").write_text(json.dumps(report, indent=1))
    (cfg.out_dir / f"{kind}.md").write_text(markdown(report))
    plot(report, cfg.out_dir / f"{kind}.png")
    print(markdown(report))
    log(f"wrote {cfg.out_dir / kind}.md, .json and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
