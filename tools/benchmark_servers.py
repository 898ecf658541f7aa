"""Triton, TorchServe and in-process, side by side in one run (benchmarks/servers.md).

    python tools/benchmark_servers.py [--duration 10] [--concurrency 1 4 8] [--rounds 2]
    OMP_WAIT_POLICY= python tools/benchmark_servers.py --name servers-spin   # libgomp's own wait

Four settings, each built by the converter from the same flags for both servers: the demo
CRNN at batch 1 on a word crop, the demo DBNet on demo/demo_page.jpg, the end-to-end demo pair
on the same page, and the CRNN batching up to 8 requests (20 ms batch delay). Both servers
run at once on loopback ports; each setting's windows alternate between them (forwards,
then backwards), so that a machine whose speed drifts favours neither. In-process is the
engine in this process with a worker's settings, one request per call: the latency a
batch-1 server adds to. Triton gets the image as raw bytes (tritonclient's binary form),
TorchServe as the request body. Writes OUT/NAME.{json,md} (NAME: ``--name``, default
servers) with p50/p99, images/s, ratios and the PASS/FAIL lines of the floors; exits 1 when
a floor fails. Every process (in-process, workers, stubs) runs with the same OpenMP wait
policy: this project's default, or the one ``OMP_WAIT_POLICY`` names (empty: libgomp's own).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmocr_serve.openmp import sleep_while_waiting  # noqa: E402
from mmocr_serve_tools.loadgen import (LoadResult, drive, log, write_report,  # noqa: E402
                                       machine_description)

DEMO = ROOT / "demo" / "models"
DET = dict(config=str(DEMO / "dbnet_demo.py"), checkpoint=str(DEMO / "dbnet_demo.pth"))
RECOG = dict(config=str(DEMO / "crnn_demo.py"), checkpoint=str(DEMO / "crnn_demo.pth"))
E2E = dict(**DET, recog_config=str(DEMO / "crnn_demo.py"),
           recog_checkpoint=str(DEMO / "crnn_demo.pth"))
# label -> (the converter's fields, the image sent)
SETTINGS = {
    "crnn_b1": (dict(**RECOG, batch_size=1), "demo/demo_text_recog.jpg"),
    "dbnet": (dict(**DET, batch_size=1), "demo/demo_page.jpg"),
    "ocr": (dict(**E2E, batch_size=1), "demo/demo_page.jpg"),
    "crnn_b8": (dict(**RECOG, batch_size=8, max_batch_delay_ms=20), "demo/demo_text_recog.jpg"),
}
SERVERS = ("triton", "torchserve")
LATENCY_FLOOR_MS = 1.5  # Triton's batch-1 CRNN p50 over in-process's, at most


@dataclass(frozen=True)
class Config:
    duration_s: float = 10.0  # per setting and server, split into ``rounds`` windows
    rounds: int = 2
    concurrency: Sequence[int] = (1, 4, 8)
    out_dir: Path = ROOT / "benchmarks"
    name: str = "servers"  # OUT/NAME.{json,md}
    workdir: Path = ROOT / "work" / "benchmark-servers"


def build(cfg: Config) -> tuple:
    """The .mar archives and the Triton repository entries, from the same fields."""
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive

    store, repo = cfg.workdir / "model-store", cfg.workdir / "triton-repo"
    for label, (fields, _) in SETTINGS.items():
        for fmt, folder in (("mar", store), ("triton", repo)):
            build_archive(ArchiveSpec.flat(**fields, output_folder=str(folder),
                                           model_name=label, format=fmt, force=True))
    return store, repo


def in_process(repo: Path, label: str, image: bytes, seconds: float) -> dict:
    """One request per call to the engine, loaded as a worker loads it."""
    from mmocr_serve.engine import load_engine
    from mmocr_serve.errors import ServeError
    from mmocr_serve.runtime import RuntimeOptions, apply_process_settings

    batch = SETTINGS[label][0]["batch_size"]
    options = RuntimeOptions(batch_size=batch)
    apply_process_settings(options, "cpu")
    engine = load_engine(repo / label / "1", "cpu", options)
    engine.predict_payloads([image])  # warm-up
    result = LoadResult(concurrency=1)
    began = time.monotonic()
    while time.monotonic() - began < seconds or result.ok < 5:
        start = time.perf_counter()
        outcome = engine.predict_payloads([image])[0]
        assert not isinstance(outcome, ServeError), outcome.message
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
        result.statuses["200"] = result.statuses.get("200", 0) + 1
    result.elapsed_s = time.monotonic() - began
    return result.summary()


def targets(servers: dict, label: str, image: bytes) -> Dict[str, tuple]:
    """server -> (URL, body, headers) of one request to ``label``."""
    from mmocr_serve_tools.triton import binary_infer_request

    body, headers = binary_infer_request(image)
    return {
        "triton": (f"{servers['triton'].http_url}/v2/models/{label}/infer", body, headers),
        "torchserve": (f"{servers['torchserve'].inference_url}/predictions/{label}", image,
                       {"Content-Type": "application/octet-stream"}),
    }


def served(cfg: Config, servers: dict, label: str, image: bytes) -> List[dict]:
    """Each server at each concurrency: ``rounds`` windows, taken in turn."""
    rows = []
    for clients in cfg.concurrency:
        windows: Dict[str, List[LoadResult]] = {server: [] for server in SERVERS}
        for turn in range(cfg.rounds):
            for server in SERVERS if turn % 2 == 0 else reversed(SERVERS):
                url, body, headers = targets(servers, label, image)[server]
                drive(url, [body], clients, 2, headers=headers)  # warm-up, not counted
                windows[server].append(drive(url, [body], clients, cfg.duration_s / cfg.rounds,
                                             headers=headers))
        for server, results in windows.items():
            row = {"setting": label, "server": server, **LoadResult.combined(results).summary()}
            rows.append(row)
            log(f"  {label} {server:10s} {clients} clients: {row['images_per_s']:7.2f} images/s"
                f"  p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  "
                f"errors {row['errors']}")
    return rows


def run(cfg: Config) -> dict:
    from contextlib import ExitStack

    from mmocr_serve_tools.server import TorchServeProcess
    from mmocr_serve_tools.triton import TritonProcess

    log(f"building {len(SETTINGS)} archives and Triton entries in {cfg.workdir}")
    store, repo = build(cfg)
    images = {label: (ROOT / name).read_bytes() for label, (_, name) in SETTINGS.items()}
    report = {"machine": machine_description(), "config": asdict(cfg), "in_process": {},
              "rows": [], "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    for label in SETTINGS:
        report["in_process"][label] = in_process(repo, label, images[label], cfg.duration_s / 2)
        log(f"  {label} in-process: p50 {report['in_process'][label]['p50_ms']} ms")
    with ExitStack() as stack:
        servers = {
            "triton": stack.enter_context(TritonProcess(repository=repo,
                                                        workdir=cfg.workdir / "triton")),
            "torchserve": stack.enter_context(TorchServeProcess(
                model_store=store, models=[f"{label}={label}.mar" for label in SETTINGS],
                workdir=cfg.workdir / "torchserve")),
        }
        log("both servers ready")
        for label in SETTINGS:
            report["rows"] += served(cfg, servers, label, images[label])
    report["floors"] = floors(report)
    return report


def row(report: dict, setting: str, server: str, clients: int) -> dict:
    return next(r for r in report["rows"] if (r["setting"], r["server"], r["concurrency"])
                == (setting, server, clients))


def floors(report: dict) -> List[str]:
    """PASS/FAIL lines: Triton's batch-1 CRNN p50 within LATENCY_FLOOR_MS of in-process;
    Triton's throughput at least TorchServe's in every setting."""
    lines = []
    triton = row(report, "crnn_b1", "triton", 1)["p50_ms"]
    local = report["in_process"]["crnn_b1"]["p50_ms"]
    verdict = "PASS" if triton - local <= LATENCY_FLOOR_MS else "FAIL"
    lines.append(f"{verdict}: Triton's batch-1 CRNN p50 {triton} ms, in-process {local} ms: "
                 f"+{triton - local:.1f} ms (floor: +{LATENCY_FLOOR_MS} ms)")
    for r in report["rows"]:
        if r["server"] != "triton":
            continue
        other = row(report, r["setting"], "torchserve", r["concurrency"])
        ratio = r["images_per_s"] / other["images_per_s"] if other["images_per_s"] else 0.0
        verdict = "PASS" if ratio >= 1.0 else "FAIL"
        lines.append(f"{verdict}: {r['setting']} at {r['concurrency']} clients: Triton "
                     f"{r['images_per_s']} images/s, TorchServe {other['images_per_s']} (x{ratio:.2f})")
    return lines


def markdown(report: dict) -> str:
    """benchmarks/servers.md, from the run's json alone."""
    m = report["machine"]
    out = ["# Triton, TorchServe and in-process, one run", "",
           f"`{report['command']}`; docs/benchmarks.md says how to read it.", "",
           "OpenMP wait policy of every process: " + (
               f"`OMP_WAIT_POLICY={report.get('omp_wait_policy', 'PASSIVE')}`"
               if report.get("omp_wait_policy", "PASSIVE") else "libgomp's own (spin, then sleep)")
           + ".", "",
           f"Machine: {m['cpu']} ({', '.join(m['cpu_flags'])}), {m['cores']} cores, "
           f"{m['memory_gib']} GiB, torch {m['torch']}, Python {m['python']}.", "",
           "| setting | clients | Triton images/s | TorchServe images/s | ratio | Triton p50 / p99 ms "
           "| TorchServe p50 / p99 ms | in-process p50 ms |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for setting in SETTINGS:
        for clients in report["config"]["concurrency"]:
            t, s = row(report, setting, "triton", clients), row(report, setting, "torchserve", clients)
            ratio = t["images_per_s"] / s["images_per_s"] if s["images_per_s"] else float("nan")
            local = report["in_process"][setting]["p50_ms"] if clients == 1 else ""
            out.append(f"| {setting} | {clients} | {t['images_per_s']:.2f} | {s['images_per_s']:.2f} "
                       f"| x{ratio:.2f} | {t['p50_ms']} / {t['p99_ms']} | {s['p50_ms']} / "
                       f"{s['p99_ms']} | {local} |")
    return "\n".join(out + [""] + [f"- {line}" for line in report["floors"]]) + "\n"


def parse_args(argv: Optional[List[str]] = None) -> Config:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=defaults.duration_s,
                        help="seconds per setting and server (split into the rounds)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--concurrency", nargs="+", type=int, default=defaults.concurrency)
    parser.add_argument("--out-dir", type=Path, default=defaults.out_dir)
    parser.add_argument("--name", default=defaults.name, help="write OUT/NAME.json and .md")
    parser.add_argument("--workdir", type=Path, default=defaults.workdir)
    args = parser.parse_args(argv)
    return Config(duration_s=args.duration, rounds=args.rounds, concurrency=args.concurrency,
                  out_dir=args.out_dir, workdir=args.workdir, name=args.name)


def main(argv: Optional[List[str]] = None) -> int:
    sleep_while_waiting()  # in-process runs as the servers' workers do (before torch loads)
    cfg = parse_args(argv)
    report = run(cfg)
    report["command"] = " ".join(["python tools/benchmark_servers.py", *(argv or sys.argv[1:])])
    write_report(cfg.out_dir, cfg.name, report, markdown(report))
    return 0 if all(line.startswith("PASS") for line in report["floors"]) else 1


if __name__ == "__main__":
    sys.exit(main())
