"""``--backend onnxruntime``: the recognizer's network exported, checked and packed by the
converter, run in ONNX Runtime with MMOCR's own pipeline around it, in-process; and the models it
refuses (tests/integration/test_onnx_served.py serves it)."""

from __future__ import annotations


from clis import convert
from answers import assert_same
from conftest import (DET_CHECKPOINT, DET_CONFIG, RECOG_CHECKPOINT, RECOG_CONFIG, unpack)
from mmocr_serve_tools.archive import archive_summary


def test_the_archive_carries_the_checked_network(onnx_store):
    summary = archive_summary(onnx_store / "crnn_onnx.mar")
    assert {"recog.onnx", "recog.pth", "recog_config.py", "sitecustomize.py"} <= set(summary["files"])
    assert summary["manifest"]["models"]["recog"]["network"] == "recog.onnx"
    ocr = archive_summary(onnx_store / "ocr_onnx.mar")["manifest"]["models"]
    assert ocr["recog"]["network"] == "recog.onnx" and ocr["det"]["network"] is None


def test_in_process_onnx_reads_as_model_inference(onnx_store, workdir, image_files, rendered,
                                                  reference_model):
    from mmocr.apis import model_inference

    from mmocr_serve.engine import load_engine
    from mmocr_serve.results import Recognition

    engine = load_engine(unpack(onnx_store / "crnn_onnx.mar", workdir / "unpacked" / "crnn_onnx"))
    assert engine.recognizer.network is not None
    model = reference_model(RECOG_CONFIG, RECOG_CHECKPOINT)
    for name in ("word.png", "word.jpg"):
        (answer,) = engine.predict_payloads([image_files[name].read_bytes()])
        expected = Recognition.from_mmocr(model_inference(model, str(image_files[name])))
        assert expected.text == rendered[name]
        assert_same(expected.to_dict(), answer.to_dict())


def test_a_detector_is_refused_and_nothing_is_written(tmp_path):
    done = convert(DET_CONFIG, DET_CHECKPOINT, "--output-folder", tmp_path / "out",
                   "--backend", "onnxruntime")
    assert done.returncode == 1
    assert "--backend onnxruntime is for text recognizers" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_network_that_does_not_export_is_refused_with_the_reason(tmp_path):
    """SAR's encoder indexes its features by each crop's valid ratio, which the exporter
    cannot turn into ONNX (docs/onnx.md lists each recognizer's outcome)."""
    from mmocr_serve.loading import save_random_checkpoint

    config = "textrecog/sar/sar_r31_parallel_decoder_academic.py"
    checkpoint = save_random_checkpoint(config, tmp_path / "sar.pth")
    done = convert(config, checkpoint, "--output-folder", tmp_path / "out",
                   "--backend", "onnxruntime")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SARNet's network does not export to ONNX (opset 17): " in done.stderr, done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
