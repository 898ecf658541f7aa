"""End-to-end OCR archives (detect, crop, recognise) and per-request options."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from answers import assert_detects, assert_reads, assert_same
from conftest import DET_CONFIG, RECOG_CONFIG
from fake_context import FakeContext, load_handler_class
from mmocr_serve.errors import InvalidOption
from mmocr_serve.decode import split_request
from mmocr_serve.options import RequestOptions, parse_options
from mmocr_serve.results import DetectionResult, TextInstance, reading_order

CLI = Path(__file__).resolve().parents[1] / "tools" / "deployment" / "mmocr2torchserve.py"


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
        [sys.executable, str(CLI), RECOG_CONFIG, str(recog_checkpoint), "--recog-config",
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


@pytest.mark.integration
def test_served_e2e_equals_readtext(torchserve, image_files, rendered, readtext):
    url = f"{torchserve.inference_url}/predictions/ocr"
    for name in ("scene.jpg", "scene.png"):
        response = requests.post(url, data=image_files[name].read_bytes(), timeout=300)
        assert response.status_code == 200, response.text
        served = response.json()
        expected = readtext(image_files[name])
        assert_reads(rendered[name], expected)
        assert_same(expected, served)
        assert [i["text"] for i in served["result"]] == [i["text"] for i in expected["result"]]


@pytest.mark.integration
def test_a_page_without_text_reads_nothing(torchserve, tmp_path):
    import numpy as np

    from images import encode
    from mmocr_serve_tools import synth

    blank = synth.render_page(np.random.default_rng(5), size=(480, 360), words=[])
    assert blank.words == ()
    response = requests.post(f"{torchserve.inference_url}/predictions/ocr",
                             data=encode(blank.image, "PNG"), timeout=300)
    assert response.status_code == 200 and response.json() == {"result": []}


@pytest.mark.integration
def test_served_options_by_query_form_and_json(torchserve, image_files, rendered):
    import base64

    base = torchserve.inference_url
    data = image_files["scene.jpg"].read_bytes()
    words = [w.text for w in rendered["scene.jpg"].words]  # rendered in reading order
    unfiltered = requests.post(f"{base}/predictions/ocr", data=data, timeout=300)
    assert sorted(i["text"] for i in unfiltered.json()["result"]) == sorted(words)
    empty = requests.post(f"{base}/invocations?model_name=ocr&score_thr=1.0", data=data,
                          timeout=300)
    assert empty.status_code == 200 and empty.json() == {"result": []}
    form = requests.post(f"{base}/predictions/ocr", files={"upload": data},
                         data={"score_thr": "1.0"}, timeout=300)
    assert form.status_code == 200 and form.json() == {"result": []}
    scores = sorted(i["box_score"] for i in unfiltered.json()["result"])
    middle = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # between two boxes
    some = requests.post(f"{base}/predictions/ocr", files={"upload": data},
                         data={"score_thr": str(middle)}, timeout=300).json()["result"]
    assert 0 < len(some) < len(scores)
    assert some == [i for i in unfiltered.json()["result"] if i["box_score"] >= middle]
    ordered = requests.post(f"{base}/predictions/ocr", timeout=300,
                            json={"data": base64.b64encode(data).decode(), "order": "reading",
                                  "score_thr": 0.1})
    assert ordered.status_code == 200
    assert [i["text"] for i in ordered.json()["result"]] == words
    for kwargs, text in (({"data": {"threshold": "1"}}, "unknown option(s) threshold"),
                         ({"data": {"score_thr": "abc"}}, "score_thr must be a number")):
        bad = requests.post(f"{base}/predictions/ocr", files={"image": data}, timeout=60,
                            **kwargs)
        assert bad.status_code == 400 and bad.json()["type"] == "InvalidOption"
        assert text in bad.json()["message"]
    baseline = requests.post(f"{base}/predictions/dbnet", files={"image": data}, timeout=300)
    assert_detects(rendered["scene.jpg"], baseline.json())
    det = requests.post(f"{base}/predictions/dbnet", files={"image": data},
                        data={"score_thr": "1.0"}, timeout=300)
    assert det.status_code == 200 and det.json() == {"boundary_result": []}
    recog = requests.post(f"{base}/invocations?model_name=crnn&score_thr=0.5",
                          data=image_files["word.png"].read_bytes(), timeout=60)
    assert recog.status_code == 400 and "none for a recognizer" in recog.json()["message"]
