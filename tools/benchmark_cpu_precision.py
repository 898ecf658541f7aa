"""What ``--cpu-precision bf16`` buys each model over fp32, in one run:
benchmarks/cpu-precision.{json,md}.

    python tools/benchmark_cpu_precision.py [--rounds 5] [--threads 1 2]

Each model is loaded twice, as a CPU worker loads it (channels-last detectors, DBNet's
probability map alone), once per precision, and the two take turns (forwards, then
backwards) so that a drifting machine favours neither:

- the demo models, whole answers (``OCREngine.predict_payloads``: decoding, pre- and
  post-processing included): DBNet on demo/demo_page.jpg, CRNN on demo/demo_text_recog.jpg,
  and both end to end on demo/demo_page.jpg;
- MMOCR's dbnet_r18_fpnc_1200e_icdar2015 with random weights, on demo/demo_text_det.jpg:
  the network pass alone (backbone, neck, head), since random maps make its
  post-processing meaningless.

On a CPU without avx512_bf16 or amx_bf16 a bf16 archive runs in float32; the tool says so
and measures nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DET = ("demo/models/dbnet_demo.py", "demo/models/dbnet_demo.pth")
RECOG = ("demo/models/crnn_demo.py", "demo/models/crnn_demo.pth")
R18 = "textdet/dbnet/dbnet_r18_fpnc_1200e_icdar2015.py"
CASES = {  # name -> (models, image, what is timed)
    "demo DBNet": ({"det": DET}, "demo/demo_page.jpg", "answer"),
    "demo CRNN": ({"recog": RECOG}, "demo/demo_text_recog.jpg", "answer"),
    "demo DBNet + CRNN (end to end)": ({"det": DET, "recog": RECOG}, "demo/demo_page.jpg",
                                       "answer"),
    "DBNet r18 (icdar2015, random weights)": ({"det": (R18, None)}, "demo/demo_text_det.jpg",
                                              "network pass"),
}


def case_runner(name: str, precision: str, workdir: Path) -> Callable[[], object]:
    """One call of the timed work for ``name`` at ``precision``."""
    import torch

    from mmocr_serve.engine import engine_from_models
    from mmocr_serve.loading import resolve_config_path, save_random_checkpoint
    from mmocr_serve.runtime import RuntimeOptions

    models, image, timed = CASES[name]
    models = {role: (str(ROOT / config) if (ROOT / config).is_file() else config,
                     str(ROOT / checkpoint) if checkpoint else str(save_random_checkpoint(
                         resolve_config_path(config), workdir / "dbnet_r18_random.pth")))
              for role, (config, checkpoint) in models.items()}
    engine = engine_from_models(models, "cpu", RuntimeOptions(cpu_precision=precision))
    payload = (ROOT / image).read_bytes()
    if timed == "answer":
        return lambda: engine.predict_payloads([payload])
    adapter = engine.detector
    img = adapter.network_input([adapter.prepare(engine.decode(payload))])

    def network_pass():
        with torch.no_grad():
            return adapter.model.bbox_head(adapter.model.extract_feat(img))
    return network_pass


def timings(name: str, rounds: int, calls: int, workdir: Path) -> dict:
    """Median ms of a call at each precision, over ``rounds`` alternating windows."""
    from mmocr_serve_tools.loadgen import alternating_medians

    runners = {precision: case_runner(name, precision, workdir) for precision in ("fp32", "bf16")}
    ms = alternating_medians(runners, rounds, calls)
    return {"model": name, "timed": CASES[name][2], **ms,
            "speed-up": round(ms["fp32"] / ms["bf16"], 3)}


def markdown(report: dict) -> str:
    from mmocr_serve_tools.loadgen import machine_line

    m = report["machine"]
    out = ["# --cpu-precision bf16 against fp32", "",
           f"`{report['command']}`; median of every call, the two precisions taking turns.", "",
           machine_line(m), "",
           "| model | timed | torch threads | fp32 ms | bf16 ms | speed-up |",
           "|---|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        out.append(f"| {r['model']} | {r['timed']} | {r['threads']} | {r['fp32']} | {r['bf16']} "
                   f"| x{r['speed-up']} |")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    from mmocr_serve.openmp import sleep_while_waiting

    sleep_while_waiting()  # as a worker runs (before torch loads)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5, help="calls per window")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--workdir", type=Path, default=ROOT / "work" / "benchmark-cpu-precision")
    args = parser.parse_args(argv)
    import torch

    from mmocr_serve.runtime import BF16_FLAGS, cpu_flags
    from mmocr_serve_tools.loadgen import log, machine_description, write_report

    if not any(flag in cpu_flags() for flag in BF16_FLAGS):
        print(f"this CPU has neither {' nor '.join(BF16_FLAGS)}: a bf16 archive runs in float32 "
              "here, so there is nothing to measure", file=sys.stderr)
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in CASES:
            rows.append({**timings(name, args.rounds, args.calls, args.workdir),
                         "threads": threads})
            log(f"{name}, {threads} thread(s): {rows[-1]}")
    command = " ".join(["python tools/benchmark_cpu_precision.py", *(argv or sys.argv[1:])])
    report = {"command": command, "machine": machine_description(), "rows": rows}
    write_report(args.out_dir, "cpu-precision", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
