"""End-to-end OCR archives (detect, crop, recognise) and per-request options."""

import json
import subprocess
import sys

import pytest

from answers import assert_reads, assert_same
from clis import CONVERTER
from conftest import DET_CONFIG, RECOG_CONFIG
from fake_context import FakeContext, load_handler_class
from mmocr_serve.errors import InvalidOption
from mmocr_serve.decode import split_request
from mmocr_serve.options import RequestOptions, parse_options
from mmocr_serve.results import DetectionResult, TextInstance, reading_order



def box(x, y, w=10, h=10):
    return TextInstance([x, y, x + w, y, x + w, y + h, x, y + h], 0.9)


def test_reading_order_lines_then_left_to_right():
    a, b, c, d = box(50, 0), box(0, 2), box(30, 40), box(5, 42)
    assert reading_order([a, c, b, d]) == [b, a, d, c]


def test_select_threshold_keeps_equal_scores():
    det = DetectionResult([TextInstance([0, 0, 1, 0, 1, 1, 0, 1], 0.5),
                           TextInstance([0, 0, 1, 0, 1, 1, 0, 1], 0.4)])
    assert [i.score for i in det.select(0.5).instances] == [0.5]


@pytest.mark.parametrize("raw,expected", [
    ({}, RequestOptions()),
    ({"score_thr": b"0.3"}, RequestOptions(score_thr=0.3)),
    ({"score_thr": 1, "order": "reading"}, RequestOptions(score_thr=1.0, order="reading")),
])
def test_options_parse(raw, expected):
    assert parse_options(raw, accepts_options=True) == expected


@pytest.mark.parametrize("raw,message", [
    ({"threshold": "0.3"}, "unknown option(s) threshold"),
    ({"score_thr": "abc"}, "score_thr must be a number from 0 to 1"),
    ({"score_thr": "1.5"}, "score_thr must be a number from 0 to 1"),
    ({"score_thr": "nan"}, "score_thr must be a number from 0 to 1"),
    ({"order": "random"}, "order must be one of detector, reading"),
])
def test_bad_options_are_named(raw, message):
    with pytest.raises(InvalidOption, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_options(raw, accepts_options=True)


def test_recognizer_takes_no_options():
    with pytest.raises(InvalidOption, match="none for a recognizer"):
        parse_options({"score_thr": "0.1"}, accepts_options=False)


def test_split_request_finds_options_in_json_and_query():
    payload, raw = split_request({"body": {"data": "abc", "order": "reading"}})
    assert payload == "abc" and raw == {"order": "reading"}
    payload, raw = split_request({"body": b"img", "score_thr": bytearray(b"0.2")})
    assert payload == b"img" and parse_options(raw, True).score_thr == 0.2
    payload, raw = split_request({"upload": b"image bytes", "order": b"reading",
                                  "model_name": b"ocr"})
    assert payload == b"image bytes" and parse_options(raw, True).order == "reading"
    # a multipart upload under other names: the largest bytes field is the image
    payload, raw = split_request({"note": b"x", "upload": b"image bytes"})
    assert payload == b"image bytes" and raw == {"note": b"x"}
    with pytest.raises(InvalidOption, match="foo"):
        parse_options(split_request({"upload": b"image bytes", "foo": b"1"})[1], True)


def test_converter_refuses_recognizer_as_detector(tmp_path, det_checkpoint, recog_checkpoint):
    result = subprocess.run(
        [sys.executable, str(CONVERTER), RECOG_CONFIG, str(recog_checkpoint), "--recog-config",
         DET_CONFIG, "--recog-checkpoint", str(det_checkpoint), "--output-folder", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "needs a text detector then a text recognizer" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_e2e_archive_holds_both_models(model_store):
    from mmocr_serve_tools.archive import archive_summary

    summary = archive_summary(model_store / "ocr.mar")
    assert summary["manifest"]["task"] == "ocr"
    assert set(summary["manifest"]["models"]) == {"det", "recog"}
    assert {"det.pth", "recog.pth", "det_config.py", "recog_config.py"} <= set(summary["files"])


def test_handler_equals_readtext(ocr_model_dir, image_files, rendered, readtext):
    
    handler = load_handler_class(ocr_model_dir)()
    handler.initialize(FakeContext(ocr_model_dir))
    names = ["scene.jpg", "scene.png"]
    ctx = FakeContext(ocr_model_dir)
    out = handler.handle([{"body": image_files[n].read_bytes()} for n in names]
                         + [{"body": b"junk"}], ctx)
    json.dumps(out)
    assert ctx.statuses == {2: (400, "InvalidImage")}
    for name, served in zip(names, out):
        expected = readtext(image_files[name])
        assert_reads(rendered[name], expected)
        assert_same(expected, served)
        assert [i["box"] for i in served["result"]] == [i["box"] for i in expected["result"]]


