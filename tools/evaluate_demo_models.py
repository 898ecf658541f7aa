"""Held-out accuracy of the demo models in demo/models/, with MMOCR's own metrics.

Renders held-out pages (``mmocr_serve_tools.synth``): font families that training never saw
(``synth.HELD_OUT_FAMILIES``: Liberation, Caladea, Lato) and running text from a source
that training never used (the licences in /usr/share/common-licenses; training read
Python's docstrings), in two sets: pages of every kind (paragraphs or scattered lines, on
paper or busy backgrounds, blurred, noisy, tilted, JPEG), and clean black-on-white pages.
On each set it measures:

- the recognizer's exact-word accuracy, case and punctuation included, on word crops
  cut from the pages (``OCRDataset.evaluate``'s ``word_acc``);
- the detector's hmean at IoU 0.5 (``IcdarDataset.evaluate``, at box score 0.3);
- end-to-end: the fraction of the words on pages read exactly by a box of IoU >= 0.5,
  in-process with ``MMOCR(...).readtext`` and served by a real TorchServe from an archive
  that the converter builds. Served answers must equal readtext's.

    python tools/evaluate_demo_models.py [--recog-pages N] [--det-pages N] [--e2e-pages N]

The last two lines read ``clean black-on-white pages: recognizer word accuracy A; ...``
and ``recognizer word accuracy A; detector hmean H; end-to-end word accuracy E`` (every
kind of page). Exit status 1 when a figure of either set is below its floor (0.92, 0.92,
0.88) or a served answer differs from readtext's, 2 when the demo models are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DET_CONFIG, DET_CHECKPOINT = "demo/models/dbnet_demo.py", "demo/models/dbnet_demo.pth"
RECOG_CONFIG, RECOG_CHECKPOINT = "demo/models/crnn_demo.py", "demo/models/crnn_demo.pth"
FLOORS = {"recognizer": 0.92, "detector": 0.92, "end-to-end": 0.88}
SEED = 90210  # training renders from seeds 2026 and 2027, in other fonts and text
CROPS_PER_PAGE = 25  # word crops cut from one page: more pages, more of the fonts


@dataclass(frozen=True)
class PageSet:
    name: str  # printed before its figures
    clean: bool  # black on white, upright and sharp
    seed: int
    share: float  # of the page counts given on the command line


SETS = (PageSet("every kind of page", clean=False, seed=SEED, share=1.0),
        PageSet("clean black-on-white pages", clean=True, seed=SEED + 10, share=0.4))


def pages_of(page_set: PageSet, offset: int, count: int) -> list:
    import numpy as np

    from mmocr_serve_tools import synth

    rng = np.random.default_rng(page_set.seed + offset)
    return [synth.render_page(rng, synth.HELD_OUT, clean=page_set.clean)
            for _ in range(max(1, round(count * page_set.share)))]


def recognizer_accuracy(folder: Path, page_set: PageSet, pages: int, checkpoint: Path,
                        precision: str) -> float:
    import numpy as np

    from mmocr_serve_tools import synth

    rng = np.random.default_rng(page_set.seed)
    crops = [crop for page in pages_of(page_set, 0, pages)
             for crop in synth.word_crops(rng, page, limit=CROPS_PER_PAGE)]
    ann = synth.write_recognition_set(str(folder), crops, "held_out")
    paths = dict(img_prefix=str(folder / "held_out"), ann_file=ann)
    dataset, outputs = _mmocr_test(RECOG_CONFIG, checkpoint, paths, 64, precision)
    acc = dataset.evaluate(outputs, metric="acc")["word_acc"]
    print(f"recognizer, {page_set.name}: {len(crops)} held-out word crops, exact-word "
          f"accuracy {acc:.4f}")
    return acc


def detector_hmean(folder: Path, page_set: PageSet, pages: int, checkpoint: Path,
                   precision: str) -> float:
    from mmocr_serve_tools import synth

    rendered = pages_of(page_set, 1, pages)
    ann = synth.write_detection_set(str(folder), rendered, "held_out")
    dataset, outputs = _mmocr_test(DET_CONFIG, checkpoint,
                                   dict(img_prefix=str(folder / "held_out"), ann_file=ann), 1,
                                   precision)
    # one threshold, DBNet's own minimum box score: every box a server answers with
    with iou_of_meeting_boxes_only():
        scores = dataset.evaluate(outputs, metric="hmean-iou", min_score_thr=0.3,
                                  max_score_thr=0.3, step=1.0)
    words = sum(len(p.words) for p in rendered)
    print(f"detector, {page_set.name}: {len(rendered)} held-out pages, {words} words: recall "
          f"{scores['hmean-iou:recall']:.4f}, precision {scores['hmean-iou:precision']:.4f}, "
          f"hmean {scores['hmean-iou:hmean']:.4f}")
    return scores["hmean-iou:hmean"]


@contextlib.contextmanager
def iou_of_meeting_boxes_only():
    """MMOCR's hmean-iou computes the IoU of every ground-truth box with every predicted box
    of a page, tens of thousands of polygon IoUs on a page of 200 words. Two boxes whose
    bounds do not meet have IoU 0, so within this context only the others are computed:
    the figures are those of MMOCR's own code, which stays in charge."""
    from mmocr.core.evaluation import utils as eval_utils

    exact, bounds = eval_utils.poly_iou, {}

    def bounds_of(poly):
        if id(poly) not in bounds:
            bounds[id(poly)] = (poly, poly.bounds)  # holds poly, so its id is not reused
        return bounds[id(poly)][1]

    def poly_iou(poly_det, poly_gt, zero_division=0):
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = bounds_of(poly_det), bounds_of(poly_gt)
        if ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0:
            return 0
        return exact(poly_det, poly_gt, zero_division)

    eval_utils.poly_iou = poly_iou
    try:
        yield
    finally:
        eval_utils.poly_iou = exact


def _mmocr_test(config: str, checkpoint: Path, paths: dict, batch: int, precision: str):
    """MMOCR's own test loop over the config's test dataset, pointed at ``paths``; with
    ``precision`` "bf16", the model's network in bfloat16 as a bf16 archive runs it."""
    import mmcv
    from mmcv.parallel import MMDataParallel
    from mmdet.datasets import build_dataloader

    import mmocr.datasets  # noqa: F401  (registers the datasets and pipelines)
    from mmocr.apis.test import single_gpu_test
    from mmocr.datasets import build_dataset

    from mmocr_serve.loading import load_model
    from mmocr_serve.runtime import run_in_bfloat16

    cfg = mmcv.Config.fromfile(str(ROOT / config))
    test = cfg.data.test.datasets[0]
    test.update(paths, pipeline=cfg.data.test.pipeline, test_mode=True)
    dataset = build_dataset(test)
    loader = build_dataloader(dataset, samples_per_gpu=batch, workers_per_gpu=0, dist=False,
                              shuffle=False)
    model = load_model(str(ROOT / config), str(checkpoint))
    if precision == "bf16":
        run_in_bfloat16(model)
    model = MMDataParallel(model)
    outputs = single_gpu_test(model, loader)
    print()  # after mmcv's progress bar
    return dataset, outputs


def end_to_end(folder: Path, pages: int, serve: bool, det_checkpoint: Path,
               recog_checkpoint: Path, precision: str) -> Dict[str, float]:
    """Each set's fraction of words read exactly, in-process and (if ``serve``) served by
    one TorchServe, whose answers must equal readtext's (within bf16's tolerance for a bf16
    archive). The figure returned is readtext's, or for bf16 the served one."""
    from mmocr_serve_tools.compare import PRECISION_TOLERANCES, compare
    from mmocr_serve_tools.deployment_check import readtext_reference

    rendered = {s.name: pages_of(s, 2, pages) for s in SETS}
    files = {}
    for idx, page_set in enumerate(SETS):
        files[page_set.name] = [folder / f"set{idx}-page{n:03d}.jpg"
                                for n in range(len(rendered[page_set.name]))]
    folder.mkdir(parents=True, exist_ok=True)
    for name, set_pages in rendered.items():
        for page, path in zip(set_pages, files[name]):
            page.save(str(path))
    readtext = readtext_reference(DET_CONFIG, det_checkpoint, RECOG_CONFIG, recog_checkpoint)
    expected = {name: [readtext(path) for path in paths] for name, paths in files.items()}
    served = serve_pages(folder, [p for paths in files.values() for p in paths], det_checkpoint,
                         recog_checkpoint, precision) if serve else []
    figures = {}
    for name, set_pages in rendered.items():
        words = sum(len(p.words) for p in set_pages)
        hits = words_read(set_pages, expected[name])
        figures[name] = hits / words
        print(f"end-to-end in-process (MMOCR.readtext), {name}: {len(set_pages)} pages, "
              f"{words} words, {hits} read exactly: {hits / words:.4f}")
        if not serve:
            continue
        answers, served = served[:len(set_pages)], served[len(set_pages):]
        served_hits = words_read(set_pages, answers)
        if precision == "bf16":
            figures[name] = served_hits / words
        diffs = [compare(e, a, PRECISION_TOLERANCES[precision])
                 for e, a in zip(expected[name], answers)]
        equal = sum(d.ok for d in diffs)
        print(f"end-to-end served (TorchServe, one end-to-end archive, {precision}), {name}: "
              f"{served_hits} read exactly: {served_hits / words:.4f}; answers equal "
              f"readtext's on {equal} of {len(set_pages)} pages" + differences(diffs))
        if equal != len(set_pages):
            raise SystemExit("served answers differ from MMOCR.readtext's: "
                             + "; ".join(p for d in diffs for p in d.problems[:3]))
    return figures


def differences(diffs: Sequence) -> str:
    """The largest differences from readtext's answers (what bf16's tolerance is set from)."""
    boxes = sum(d.count_expected for d in diffs)
    texts = sum(d.texts_equal for d in diffs)
    return (f" (largest score difference {max(d.max_score_diff for d in diffs):.4g}, smallest "
            f"box IoU {min(d.min_iou for d in diffs):.3f}, texts equal on {texts} of {boxes} "
            "boxes)")


def words_read(pages: Sequence, answers: Sequence[dict]) -> int:
    """How many of the pages' words the end-to-end answers read exactly."""
    from mmocr_serve_tools import synth

    return sum(synth.words_read(p.words, a["result"]).count(True) for p, a in zip(pages, answers))


def serve_pages(folder: Path, files: Sequence[Path], det_checkpoint: Path,
                recog_checkpoint: Path, precision: str) -> List[dict]:
    """Each page's answer from a real TorchServe serving the converter's archive."""
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive
    from mmocr_serve_tools.deployment_check import CheckSpec, query_server
    from mmocr_serve_tools.server import TorchServeProcess
    from mmocr_serve.runtime import RuntimeOptions

    store = folder / "model-store"
    build_archive(ArchiveSpec(config=str(ROOT / DET_CONFIG), checkpoint=str(det_checkpoint),
                              recog_config=str(ROOT / RECOG_CONFIG),
                              recog_checkpoint=str(recog_checkpoint),
                              output_folder=str(store), model_name="ocr",
                              runtime=RuntimeOptions(cpu_precision=precision)))
    with TorchServeProcess(store, ["ocr=ocr.mar"], folder / "torchserve") as server:
        spec = CheckSpec(images=files, config=DET_CONFIG, checkpoint=str(det_checkpoint),
                         model_name="ocr", inference_addr=server.inference_url)
        return [query_server(spec, path, token=None) for path in files]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recog-pages", type=int, default=40,
                        help=f"pages cut into word crops ({CROPS_PER_PAGE} a page at most)")
    parser.add_argument("--det-pages", type=int, default=30)
    parser.add_argument("--e2e-pages", type=int, default=8)
    parser.add_argument("--no-serve", action="store_true", help="skip the served end-to-end run")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "demo" / "models",
                        help="the folder of dbnet_demo.pth and crnn_demo.pth (a training "
                             "run's output, say); the configs stay demo/models/'s")
    parser.add_argument("--cpu-precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: the models run in bfloat16, in-process and in the served "
                        "archive, compared with float32 readtext within bf16's tolerance")
    args = parser.parse_args(argv)
    det_ckpt = args.checkpoints / Path(DET_CHECKPOINT).name
    recog_ckpt = args.checkpoints / Path(RECOG_CHECKPOINT).name
    missing = [os.path.relpath(p, ROOT) for p in (ROOT / DET_CONFIG, det_ckpt, ROOT / RECOG_CONFIG,
                                                  recog_ckpt) if not p.is_file()]
    if missing:
        print(f"error: the demo models are missing: {', '.join(missing)} (make them with "
              "python tools/train_demo_models.py)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mmocr-serve-eval-") as tmp:
        tmp = Path(tmp)
        figures = {s.name: {
            "recognizer": recognizer_accuracy(tmp / f"recog{i}", s, args.recog_pages, recog_ckpt,
                                              args.cpu_precision),
            "detector": detector_hmean(tmp / f"det{i}", s, args.det_pages, det_ckpt,
                                       args.cpu_precision),
        } for i, s in enumerate(SETS)}
        read = end_to_end(tmp / "e2e", args.e2e_pages, not args.no_serve, det_ckpt, recog_ckpt,
                          args.cpu_precision)
        for name, value in read.items():
            figures[name]["end-to-end"] = value
    below = [f"{name}: {kind} {value:.4f} < {FLOORS[kind]}" for name, values in figures.items()
             for kind, value in values.items() if value < FLOORS[kind]]
    if below:
        print("below the floors: " + "; ".join(below))
    for page_set in reversed(SETS):  # every kind of page last, as before
        prefix = f"{page_set.name}: " if page_set.clean else ""
        values = figures[page_set.name]
        print(f"{prefix}recognizer word accuracy {values['recognizer']:.4f}; detector hmean "
              f"{values['detector']:.4f}; end-to-end word accuracy {values['end-to-end']:.4f}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
