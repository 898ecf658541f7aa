"""wrapper.py driven as iFlytek's AIGES Python loader drives it.

``FunctionLoader`` is written from the loader's function-style contract: string config,
a tuple of request dicts with ``desc``, an int return (anything else, or an exception,
becomes -1), and a respData entry of the expected key, type and shape. The class style
goes through the ``aiges`` package's own request/response classes and its ``check_resp``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from aiges_loader import FunctionLoader
from answers import assert_detects, assert_reads, assert_same
from conftest import DET_CONFIG, RECOG_CONFIG
from mmocr_serve import aiges_service as codes
from mmocr_serve.loading import resolve_config_path
from mmocr_serve.results import DetectionResult, Recognition

import wrapper

def model_config(det=None, recog=None, **extra) -> dict:
    config = dict(extra)
    if det:
        config.update(det_config=str(resolve_config_path(DET_CONFIG)), det_checkpoint=str(det))
    if recog:
        config.update(recog_config=str(resolve_config_path(RECOG_CONFIG)),
                      recog_checkpoint=str(recog))
    return config


@pytest.fixture()
def loader():
    loaded = FunctionLoader(wrapper)
    yield loaded
    wrapper.wrapperFini()


def test_detection_equals_model_inference(loader, det_checkpoint, image_files, rendered,
                                          reference_model):
    from mmocr.apis import model_inference

    assert loader.init(model_config(det=det_checkpoint, device="cpu")) == 0
    code, answer = loader.once([("data", image_files["scene.jpg"].read_bytes())])
    assert code == 0
    expected = DetectionResult.from_mmocr(model_inference(
        reference_model(DET_CONFIG, det_checkpoint), str(image_files["scene.jpg"]))).to_dict()
    assert_detects(rendered["scene.jpg"], expected)
    assert_same(expected, answer)


def test_recognition_and_errors(loader, recog_checkpoint, image_files, rendered, reference_model):
    from mmocr.apis import model_inference

    assert loader.init(model_config(recog=recog_checkpoint)) == 0
    word = image_files["word.png"].read_bytes()
    code, answer = loader.once([("other", b"ignored"), ("data", word)])
    assert code == 0
    expected = Recognition.from_mmocr(model_inference(
        reference_model(RECOG_CONFIG, recog_checkpoint), str(image_files["word.png"]))).to_dict()
    assert expected["text"] == rendered["word.png"]
    assert_same(expected, answer)
    assert loader.once([]) == (codes.NO_IMAGE_DATA, wrapper.wrapperError(codes.NO_IMAGE_DATA))
    assert loader.once([("data", b"")])[0] == codes.NO_IMAGE_DATA
    assert loader.once([("image", word)])[0] == codes.NO_IMAGE_DATA  # wrong key
    code, text = loader.once([("data", b"this is not an image")])
    assert code == codes.INVALID_IMAGE and "decodable image" in text
    assert loader.once([("data", word)], {"score_thr": "0.5"})[0] == codes.INVALID_OPTION


def test_end_to_end_equals_readtext(loader, det_checkpoint, recog_checkpoint, image_files,
                                    rendered, readtext):
    assert loader.init(model_config(det=det_checkpoint, recog=recog_checkpoint)) == 0
    code, answer = loader.once([("data", image_files["scene.png"].read_bytes())])
    assert code == 0
    expected = readtext(image_files["scene.png"])
    assert_reads(rendered["scene.png"], expected)
    assert_same(expected, answer)
    code, answer = loader.once([("data", image_files["scene.png"].read_bytes())],
                               {"score_thr": "1.0"})
    assert (code, answer) == (0, {"result": []})


def test_call_before_init_and_failed_init(loader, recog_checkpoint, image_files):
    word = image_files["word.png"].read_bytes()
    assert loader.once([("data", word)])[0] == codes.NOT_INITIALISED
    assert loader.init({"recog_config": "missing.py", "recog_checkpoint": "x.pth"}) \
        == codes.MODEL_LOAD_FAILED
    assert loader.init({}) == codes.MODEL_LOAD_FAILED
    assert loader.init(model_config(recog=recog_checkpoint, device="cpu")) == 0
    assert loader.once([("data", word)])[0] == 0


def test_concurrent_calls(loader, recog_checkpoint, image_files, rendered):
    assert loader.init(model_config(recog=recog_checkpoint)) == 0
    images = [image_files[n].read_bytes() for n in ("word.png", "word.jpg")] * 6
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda data: loader.once([("data", data)]), images))
    assert all(code == 0 for code, _ in results)
    assert [results[0][1]["text"], results[1][1]["text"]] == [rendered["word.png"],
                                                             rendered["word.jpg"]]
    assert all(results[i] == results[i % 2] for i in range(len(results)))


def test_error_codes_avoid_the_loaders_table():
    loader_codes = {*range(10003, 10013), 10013, 10019, *range(10041, 10045),
                    *range(10101, 10111), 10300, 10301, *range(10400, 10407), 10600,
                    *range(10901, 10911), 20001, 20002, 30001, 30002, 30003}
    assert not set(codes.ERROR_TEXT) & loader_codes
    assert all(wrapper.wrapperError(code) == text for code, text in codes.ERROR_TEXT.items())


def test_class_style_through_the_aiges_sdk(recog_checkpoint, image_files, rendered):
    from aiges.dto import DataListCls, DataListNode

    instance = wrapper.Wrapper()
    assert instance.wrapperInit(model_config(recog=recog_checkpoint)) == 0
    try:
        def request(data: bytes, key: str = "data") -> DataListCls:
            node = DataListNode()
            node.key, node.data, node.len, node.type = key, data, len(data), 2
            req = DataListCls()
            req.list = [node]
            return req

        response = instance.wrapperOnceExec({"sid": "s"}, request(image_files["word.png"].read_bytes()))
        assert instance.check_resp(response)
        answer = json.loads(response.list[0].data)
        code, expected = FunctionLoader(wrapper).once([("data", image_files["word.png"].read_bytes())])
        assert code == 0 and answer == expected and answer["text"] == rendered["word.png"]

        bad = instance.wrapperOnceExec({"sid": "s"}, request(b"junk"))
        assert bad.error_code == codes.INVALID_IMAGE and instance.check_resp(bad)
        assert instance.wrapperError(bad.error_code) == wrapper.wrapperError(bad.error_code)
    finally:
        assert instance.wrapperFini() == 0
