"""The end-to-end archive through a real TorchServe: equal to MMOCR's readtext, a page without text, options by query, form and JSON."""

import requests
from answers import assert_detects, assert_reads, assert_same


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


def test_a_page_without_text_reads_nothing(torchserve, tmp_path):
    import numpy as np

    from images import encode
    from mmocr_serve_tools import synth

    blank = synth.render_page(np.random.default_rng(5), size=(480, 360), words=[])
    assert blank.words == ()
    response = requests.post(f"{torchserve.inference_url}/predictions/ocr",
                             data=encode(blank.image, "PNG"), timeout=300)
    assert response.status_code == 200 and response.json() == {"result": []}


def test_served_options_by_query_form_and_json(torchserve, image_files, rendered):
    import base64

    base = torchserve.inference_url
    # a page the demo pair reads word for word, so that the reading order is checked exactly
    data = image_files["scene.png"].read_bytes()
    words = [w.text for w in rendered["scene.png"].words]  # rendered in reading order
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
    assert_detects(rendered["scene.png"], baseline.json())
    det = requests.post(f"{base}/predictions/dbnet", files={"image": data},
                        data={"score_thr": "1.0"}, timeout=300)
    assert det.status_code == 200 and det.json() == {"boundary_result": []}
    recog = requests.post(f"{base}/invocations?model_name=crnn&score_thr=0.5",
                          data=image_files["word.png"].read_bytes(), timeout=60)
    assert recog.status_code == 400 and "none for a recognizer" in recog.json()["message"]
