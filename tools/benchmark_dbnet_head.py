"""DBNet's pass with MMOCR's full head against the probability branch alone
(``mmocr_serve.adapter.probability_map_only``), in one run: benchmarks/dbnet-head.{json,md}.

    python tools/benchmark_dbnet_head.py [--rounds 7] [--threads 1 2]

The backbone, neck and head on one prepared page, as a CPU worker stores the weights
(channels-last), the two heads taking turns (forwards, then backwards) so that a drifting
machine favours neither: the demo DBNet on demo/demo_page.jpg, and MMOCR's
dbnet_r18_fpnc_1200e_icdar2015 (random weights: the time does not depend on them) on
demo/demo_text_det.jpg at its own test scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {  # name -> (config, checkpoint or None: random weights, image)
    "demo DBNet": ("demo/models/dbnet_demo.py", "demo/models/dbnet_demo.pth", "demo/demo_page.jpg"),
    "DBNet r18 (icdar2015)": ("textdet/dbnet/dbnet_r18_fpnc_1200e_icdar2015.py", None,
                              "demo/demo_text_det.jpg"),
}


def timings(name: str, rounds: int, passes: int, workdir: Path) -> dict:
    """Median ms of a pass with each head, over ``rounds`` alternating windows."""
    import torch

    from mmocr_serve.adapter import ModelAdapter
    from mmocr_serve.decode import decode_image
    from mmocr_serve.loading import load_model, resolve_config_path, save_random_checkpoint
    from mmocr_serve.runtime import use_channels_last
    from mmocr_serve_tools.loadgen import alternating_medians

    config, checkpoint, image = MODELS[name]
    config = str(ROOT / config) if (ROOT / config).is_file() else config
    checkpoint = str(ROOT / checkpoint) if checkpoint else str(
        save_random_checkpoint(resolve_config_path(config), workdir / "dbnet_r18_random.pth"))
    adapter = ModelAdapter(load_model(config, checkpoint).eval())
    assert adapter.probability_map_only and use_channels_last(adapter)
    head = adapter.model.bbox_head
    short = head.forward
    img = adapter.network_input([adapter.prepare(decode_image((ROOT / image).read_bytes()))])

    def pass_with(forward):
        def one_pass():
            head.forward = forward
            with torch.no_grad():
                head(adapter.model.extract_feat(img))
        return one_pass

    full = type(head).forward.__get__(head)
    ms = alternating_medians({"full": pass_with(full), "probability only": pass_with(short)},
                             rounds, passes, warmup=passes)
    return {"model": name, "input": list(img.shape), **ms,
            "speed-up": round(ms["full"] / ms["probability only"], 3)}


def markdown(report: dict) -> str:
    from mmocr_serve_tools.loadgen import machine_line

    m = report["machine"]
    out = ["# DBNet's head: MMOCR's full head against the probability map alone", "",
           f"`{report['command']}`; one pass = backbone, neck and head, channels-last, "
           "median of every pass.", "",
           machine_line(m), "",
           "| model | input | torch threads | full head ms | probability map only ms | speed-up |",
           "|---|---|---:|---:|---:|---:|"]
    for r in report["rows"]:
        out.append(f"| {r['model']} | {'x'.join(map(str, r['input'][2:][::-1]))} | {r['threads']} "
                   f"| {r['full']} | {r['probability only']} | x{r['speed-up']} |")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    from mmocr_serve.openmp import sleep_while_waiting

    sleep_while_waiting()  # as a worker runs (before torch loads)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--passes", type=int, default=5, help="passes per window")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--workdir", type=Path, default=ROOT / "work" / "benchmark-dbnet-head")
    args = parser.parse_args(argv)
    import torch

    from mmocr_serve_tools.loadgen import log, machine_description, write_report

    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in MODELS:
            rows.append({**timings(name, args.rounds, args.passes, args.workdir), "threads": threads})
            log(f"{name}, {threads} thread(s): {rows[-1]}")
    report = {"command": " ".join(["python tools/benchmark_dbnet_head.py", *(argv or sys.argv[1:])]),
              "machine": machine_description(), "rows": rows}
    write_report(args.out_dir, "dbnet-head", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
