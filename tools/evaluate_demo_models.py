"""Held-out accuracy of the demo models in demo/models/, with MMOCR's own metrics.

Renders a held-out set (other seeds and a vocabulary disjoint from training, see
``mmocr_serve.synth``), then measures:

- the recognizer's exact-word accuracy on word crops (``OCRDataset.evaluate``);
- the detector's hmean at IoU 0.5 on pages (``IcdarDataset.evaluate``, at score 0.3);
- end-to-end: the fraction of the words on pages read exactly by a box of IoU >= 0.5,
  in-process with ``MMOCR(...).readtext`` and served by a real TorchServe from an archive
  that the converter builds. Served answers must equal readtext's.

    python tools/evaluate_demo_models.py [--recog-pages N] [--det-pages N] [--e2e-pages N]

The last line reads ``recognizer word accuracy A; detector hmean H; end-to-end word
accuracy E``. Exit status 1 when a figure is below its floor (0.95, 0.90, 0.90) or a
served answer differs from readtext's, 2 when the demo models are missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DET_CONFIG, DET_CHECKPOINT = "demo/models/dbnet_demo.py", "demo/models/dbnet_demo.pth"
RECOG_CONFIG, RECOG_CHECKPOINT = "demo/models/crnn_demo.py", "demo/models/crnn_demo.pth"
FLOORS = {"recognizer": 0.95, "detector": 0.90, "end-to-end": 0.90}
SEED = 90210  # training renders from seed 2026; the vocabularies are disjoint as well


def recognizer_accuracy(folder: Path, pages: int) -> float:
    import numpy as np

    from mmocr_serve import synth

    rng = np.random.default_rng(SEED)
    crops = [crop for _ in range(pages)
             for crop in synth.word_crops(rng, synth.render_page(rng, synth.HELD_OUT))]
    ann = synth.write_recognition_set(str(folder), crops, "held_out")
    paths = dict(img_prefix=str(folder / "held_out"), ann_file=ann)
    dataset, outputs = _mmocr_test(RECOG_CONFIG, RECOG_CHECKPOINT, paths, batch=64)
    acc = dataset.evaluate(outputs, metric="acc")["word_acc"]
    print(f"recognizer: {len(crops)} held-out word crops, exact-word accuracy {acc:.4f}")
    return acc


def detector_hmean(folder: Path, pages: int) -> float:
    import numpy as np

    from mmocr_serve import synth

    rng = np.random.default_rng(SEED + 1)
    rendered = [synth.render_page(rng, synth.HELD_OUT) for _ in range(pages)]
    ann = synth.write_detection_set(str(folder), rendered, "held_out")
    dataset, outputs = _mmocr_test(DET_CONFIG, DET_CHECKPOINT,
                                   dict(img_prefix=str(folder / "held_out"), ann_file=ann), batch=1)
    # one threshold, DBNet's own minimum box score: every box a server answers with
    scores = dataset.evaluate(outputs, metric="hmean-iou", min_score_thr=0.3, max_score_thr=0.3,
                              step=1.0)
    words = sum(len(p.words) for p in rendered)
    print(f"detector: {pages} held-out pages, {words} words: recall "
          f"{scores['hmean-iou:recall']:.4f}, precision {scores['hmean-iou:precision']:.4f}, "
          f"hmean {scores['hmean-iou:hmean']:.4f}")
    return scores["hmean-iou:hmean"]


def _mmocr_test(config: str, checkpoint: str, paths: dict, batch: int):
    """MMOCR's own test loop over the config's test dataset, pointed at ``paths``."""
    import mmcv
    from mmcv.parallel import MMDataParallel
    from mmdet.datasets import build_dataloader

    import mmocr.datasets  # noqa: F401  (registers the datasets and pipelines)
    from mmocr.apis.test import single_gpu_test
    from mmocr.datasets import build_dataset

    from mmocr_serve.loading import load_model

    cfg = mmcv.Config.fromfile(str(ROOT / config))
    test = cfg.data.test.datasets[0]
    test.update(paths, pipeline=cfg.data.test.pipeline, test_mode=True)
    dataset = build_dataset(test)
    loader = build_dataloader(dataset, samples_per_gpu=batch, workers_per_gpu=0, dist=False,
                              shuffle=False)
    model = MMDataParallel(load_model(str(ROOT / config), str(ROOT / checkpoint)))
    outputs = single_gpu_test(model, loader)
    print()  # after mmcv's progress bar
    return dataset, outputs


def end_to_end(folder: Path, pages: int, serve: bool) -> float:
    """The fraction of words read exactly, in-process and (if ``serve``) served."""
    import numpy as np

    from mmocr_serve import synth
    from mmocr_serve.deployment_check import readtext_reference

    rng = np.random.default_rng(SEED + 2)
    rendered = [synth.render_page(rng, synth.HELD_OUT) for _ in range(pages)]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for idx, page in enumerate(rendered):
        files.append(folder / f"page{idx:03d}.jpg")
        page.save(str(files[-1]))
    readtext = readtext_reference(DET_CONFIG, ROOT / DET_CHECKPOINT, RECOG_CONFIG,
                                  ROOT / RECOG_CHECKPOINT)
    expected = [readtext(path) for path in files]
    words = sum(len(p.words) for p in rendered)
    hits = words_read(rendered, expected)
    print(f"end-to-end in-process (MMOCR.readtext): {pages} pages, {words} words, {hits} read "
          f"exactly: {hits / words:.4f}")
    if not serve:
        return hits / words
    served = serve_pages(folder, files)
    served_hits = words_read(rendered, served)
    equal = served_equals_readtext(expected, served)
    print(f"end-to-end served (TorchServe, one end-to-end archive): {served_hits} read exactly: "
          f"{served_hits / words:.4f}; answers equal readtext's on {equal} of {pages} pages")
    if equal != pages:
        raise SystemExit("served answers differ from MMOCR.readtext's")
    return served_hits / words


def words_read(pages: Sequence, answers: Sequence[dict]) -> int:
    """How many of the pages' words the end-to-end answers read exactly."""
    from mmocr_serve import synth

    return sum(synth.words_read(p.words, a["result"]).count(True) for p, a in zip(pages, answers))


def serve_pages(folder: Path, files: Sequence[Path]) -> List[dict]:
    """Each page's answer from a real TorchServe serving the converter's archive."""
    from mmocr_serve.archive import ArchiveSpec, build_archive
    from mmocr_serve.deployment_check import CheckSpec, query_server
    from mmocr_serve.server import TorchServeProcess

    store = folder / "model-store"
    build_archive(ArchiveSpec(config=str(ROOT / DET_CONFIG), checkpoint=str(ROOT / DET_CHECKPOINT),
                              recog_config=str(ROOT / RECOG_CONFIG),
                              recog_checkpoint=str(ROOT / RECOG_CHECKPOINT),
                              output_folder=str(store), model_name="ocr"))
    with TorchServeProcess(store, ["ocr=ocr.mar"], folder / "torchserve") as server:
        spec = CheckSpec(images=files, config=DET_CONFIG, checkpoint=DET_CHECKPOINT,
                         model_name="ocr", inference_addr=server.inference_url)
        return [query_server(spec, path, token=None) for path in files]


def served_equals_readtext(expected: Sequence[dict], served: Sequence[dict]) -> int:
    from mmocr_serve.compare import compare

    return sum(compare(e, s).ok for e, s in zip(expected, served))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recog-pages", type=int, default=20, help="pages cut into word crops")
    parser.add_argument("--det-pages", type=int, default=30)
    parser.add_argument("--e2e-pages", type=int, default=10)
    parser.add_argument("--no-serve", action="store_true", help="skip the served end-to-end run")
    args = parser.parse_args(argv)
    missing = [p for p in (DET_CONFIG, DET_CHECKPOINT, RECOG_CONFIG, RECOG_CHECKPOINT)
               if not (ROOT / p).is_file()]
    if missing:
        print(f"error: the demo models are missing: {', '.join(missing)} (make them with "
              "python tools/train_demo_models.py)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mmocr-serve-eval-") as tmp:
        tmp = Path(tmp)
        figures = {
            "recognizer": recognizer_accuracy(tmp / "recog", args.recog_pages),
            "detector": detector_hmean(tmp / "det", args.det_pages),
            "end-to-end": end_to_end(tmp / "e2e", args.e2e_pages, not args.no_serve),
        }
    below = [f"{name} {value:.4f} < {FLOORS[name]}" for name, value in figures.items()
             if value < FLOORS[name]]
    if below:
        print("below the floors: " + "; ".join(below))
    print(f"recognizer word accuracy {figures['recognizer']:.4f}; detector hmean "
          f"{figures['detector']:.4f}; end-to-end word accuracy {figures['end-to-end']:.4f}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
