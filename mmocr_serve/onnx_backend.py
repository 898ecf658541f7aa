"""ONNX Runtime for a recognizer's network pass on CPU workers.

Only the network runs there: backbone, encoder and decoder up to the per-step class
scores. MMOCR's own test pipeline prepares the crops before it and the model's own label
convertor decodes the scores after it, exactly as ``EncodeDecodeRecognizer.simple_test``
does in torch. The converter exports the network (``export_network``) and packs it only
when ONNX Runtime's answers equal eager torch's on sample crops (``check_network``);
a worker runs it with ``OnnxNetwork``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import List

import numpy as np

from .errors import ConversionError
from .openmp import threads_sleep

logger = logging.getLogger(__name__)

BACKENDS = {
    "torch": "the network runs in torch (eager), as in MMOCR",
    "onnxruntime": "a recognizer's network runs in ONNX Runtime on CPU workers; MMOCR's "
                   "pre- and post-processing are unchanged",
}
OPSET = 17
SCORE_TOL = 1e-4  # largest difference allowed between torch's and ONNX Runtime's char scores
LOGIT_TOL = 1e-3  # ... and between their raw per-step class scores
# Sample crops (height, width, count) for the export and its check: several widths, a
# batch of more than one, a crop taller than the model's input.
SAMPLE_CROPS = ((32, 100, 3), (32, 37, 1), (48, 260, 2), (32, 640, 1), (20, 12, 1))


def simple_test_metas(img, img_metas) -> list:
    """The metas as ``BaseRecognizer.forward`` hands them to ``simple_test`` (one list
    per crop, not nested), with what ``simple_test`` does first: each crop's share of the
    batch's width."""
    if len(img_metas) == 1 and isinstance(img_metas[0], list):
        img_metas = img_metas[0]
    for meta in img_metas:
        meta["valid_ratio"] = 1.0 * meta["resize_shape"][1] / img.size(-1)
    return img_metas


def network_scores(model, img, img_metas):
    """The decoder's per-step class scores for a batch of prepared crops, as
    ``EncodeDecodeRecognizer.simple_test`` computes them."""
    img_metas = simple_test_metas(img, img_metas)
    feat = model.extract_feat(img)
    out_enc = model.encoder(feat, img_metas) if model.encoder is not None else None
    return model.decoder(feat, out_enc, None, img_metas, train_mode=False)


def results_from_scores(model, img, scores, img_metas) -> List[dict]:
    """The model's own decoding of the scores of the crops ``img``: the end of
    ``simple_test``."""
    img_metas = simple_test_metas(img, img_metas)
    indexes, char_scores = model.label_convertor.tensor2idx(scores, img_metas)
    texts = model.label_convertor.idx2str(indexes)
    return [dict(text=text, score=score) for text, score in zip(texts, char_scores)]


class OnnxNetwork:
    """An exported network in an ONNX Runtime CPU session: prepared crops -> scores."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if threads_sleep():  # its pool spins while it waits, as OpenMP's does
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, img):
        import torch

        return torch.from_numpy(self.session.run(None, {"img": img.cpu().numpy()})[0])


def exportable(model) -> None:
    """Raises ConversionError unless the model's test pass is ``network_scores`` then its
    label convertor (MMOCR's encoder-decoder recognizers)."""
    from mmocr.models.textrecog.recognizer import EncodeDecodeRecognizer

    name = type(model).__name__
    if not isinstance(model, EncodeDecodeRecognizer):
        raise ConversionError(f"--backend onnxruntime takes text recognizers; {name} is not one")
    if type(model).simple_test is not EncodeDecodeRecognizer.simple_test:
        raise ConversionError(
            f"{name} has a test pass of its own ({name}.simple_test), not an encoder and "
            "a decoder whose scores its label convertor decodes; serve it with --backend torch")


def sample_batches(recognizer) -> list:
    """Collated batches of sample crops of one preprocessed shape each, those that the
    model's own test pass takes as one batch (the worker runs the others in torch).
    ``recognizer``: an ``adapter.ModelAdapter``."""
    import torch

    rng = np.random.default_rng(0)
    batches = []
    for height, width, count in SAMPLE_CROPS:
        crops = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
        datas = [recognizer.prepare(crop, from_array=True) for crop in crops]
        if any(recognizer.batch_key(data, 0)[0] == "alone" for data in datas):
            continue  # an augmented test (a tall crop, rotated)
        data = recognizer.collate(datas)
        try:
            with torch.no_grad():
                recognizer.model(return_loss=False, rescale=True, **data)
        except Exception:
            continue
        batches.append(data)
    if not batches:
        raise ConversionError(f"{recognizer.architecture}'s own test pass takes none of the "
                              "sample crops as a plain batch; serve it with --backend torch")
    return batches


def export_network(recognizer, path: Path) -> None:
    """Export the network of ``recognizer`` (an ``adapter.ModelAdapter``) to ``path`` and
    check it (``check_network``).

    Raises:
        ConversionError: the network does not export, or its answers differ from torch's.
    """
    import torch

    exportable(recognizer.model)
    batches = sample_batches(recognizer)

    class Network(torch.nn.Module):
        def __init__(self, model, img_metas):
            super().__init__()
            self.model, self.img_metas = model, img_metas

        def forward(self, img):
            return network_scores(self.model, img, self.img_metas)

    first = batches[0]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a warning per traced condition; the check decides
            # in eval mode: the exporter puts the module back in the mode it found it in
            torch.onnx.export(Network(recognizer.model, first["img_metas"]).eval(), (first["img"],),
                              str(path), dynamo=False, opset_version=OPSET,
                              input_names=["img"], output_names=["scores"],
                              dynamic_axes={"img": {0: "batch", 2: "height", 3: "width"},
                                            "scores": {0: "batch", 1: "steps"}})
    except Exception as err:
        raise ConversionError(f"{recognizer.architecture}'s network does not export to ONNX "
                              f"(opset {OPSET}): {_reason(err)}") from None
    check_network(recognizer, path, batches)


def check_network(recognizer, path: Path, batches: list) -> dict:
    """Compare ONNX Runtime's scores and decoded texts with eager torch's on ``batches``.

    Returns:
        The largest differences of the raw scores and of the char scores.

    Raises:
        ConversionError: a session that does not run, a text that differs, or a score
            further than ``SCORE_TOL`` from torch's, with the batch's shape.
    """
    import torch

    try:
        network = OnnxNetwork(path, threads=1)
    except Exception as err:
        raise ConversionError(f"ONNX Runtime cannot load {recognizer.architecture}'s exported "
                              f"network: {_reason(err)}") from None
    worst = {"scores": 0.0, "char scores": 0.0}
    for data in batches:
        shape = "x".join(str(n) for n in data["img"].shape)
        with torch.no_grad():
            eager = recognizer.model(return_loss=False, rescale=True, **data)
            eager_scores = network_scores(recognizer.model, data["img"], data["img_metas"])
            try:
                scores = network(data["img"])
                exported = results_from_scores(recognizer.model, data["img"], scores,
                                               data["img_metas"])
            except Exception as err:
                raise ConversionError(f"{recognizer.architecture}'s exported network fails on a "
                                      f"{shape} batch: {_reason(err)}") from None
        if scores.shape != eager_scores.shape:
            raise ConversionError(f"{recognizer.architecture}'s exported network gives scores of "
                                  f"shape {tuple(scores.shape)} where torch gives "
                                  f"{tuple(eager_scores.shape)} (a {shape} batch)")
        worst["scores"] = max(worst["scores"], float((scores - eager_scores).abs().max()))
        for one, other in zip(eager, exported):
            if one["text"] != other["text"] or len(one["score"]) != len(other["score"]):
                raise ConversionError(
                    f"{recognizer.architecture}'s exported network reads {other['text']!r} where "
                    f"torch reads {one['text']!r} (a {shape} batch): it does not match eager")
            diffs = np.abs(np.asarray(one["score"], float) - np.asarray(other["score"], float))
            worst["char scores"] = max([worst["char scores"], *diffs.tolist()])
        for label, tol in (("scores", LOGIT_TOL), ("char scores", SCORE_TOL)):
            if worst[label] > tol:
                raise ConversionError(
                    f"{recognizer.architecture}'s exported network {label} differ from torch's by "
                    f"{worst[label]:.2g} (more than {tol:g}) on a {shape} batch")
    logger.info("ONNX network of %s matches torch on %d sample batches: texts equal, "
                "largest differences %.1g (scores), %.1g (char scores)", recognizer.architecture,
                len(batches), worst["scores"], worst["char scores"])
    return worst


def _reason(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
