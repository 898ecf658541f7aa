"""The injected fault (``faults``: a recognizer's forward fails on a pass that reads a
marked word) through the front ends: a real TorchServe serving the recognizer in batches
of 8 and an end-to-end archive, and the AIGES wrapper. The failing request alone gets its
error; the others in its batch get their normal answers; the worker keeps serving."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import faults
from conftest import DET_CONFIG, RECOG_CONFIG, WORDS
from mmocr_serve import aiges_service as codes


BATCH, MARKED = 8, 5  # eight requests in one handler call; slot 5 holds the marked word
WORD, MARKED_WORD = WORDS["word.png"]["text"], WORDS["word.jpg"]["text"]


@pytest.fixture(scope="module")
def faulty_server(workdir, det_checkpoint, recog_checkpoint, rendered):
    """TorchServe serving crnn_faulty (batches of up to 8) and ocr_faulty (batches of 2),
    each failing on a pass that reads the marked word."""
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive
    from mmocr_serve_tools.server import TorchServeProcess

    plain, store = workdir / "faulty-plain", workdir / "faulty-store"
    store.mkdir()
    common = dict(output_folder=str(plain), max_batch_delay_ms=5000)  # one call for all
    crnn = build_archive(ArchiveSpec.flat(config=RECOG_CONFIG, checkpoint=str(recog_checkpoint),
                                          model_name="crnn8", batch_size=BATCH, **common))
    ocr = build_archive(ArchiveSpec.flat(config=DET_CONFIG, checkpoint=str(det_checkpoint),
                                         recog_config=RECOG_CONFIG,
                                         recog_checkpoint=str(recog_checkpoint),
                                         model_name="ocr2", batch_size=2, **common))
    faults.faulty_archive(crnn, store / "crnn_faulty.mar", MARKED_WORD)
    faults.faulty_archive(ocr, store / "ocr_faulty.mar", page_marked_word(rendered))
    models = ["crnn_faulty=crnn_faulty.mar", "ocr_faulty=ocr_faulty.mar"]
    with TorchServeProcess(store, models, workdir / "torchserve-faulty") as server:
        yield server


def page_marked_word(rendered) -> str:
    """A word of scene.jpg (not on scene.png): the crop whose recognition fails."""
    other = {w.text for w in rendered["scene.png"].words}
    return next(w.text for w in rendered["scene.jpg"].words[1:] if w.text not in other)


def worker_pid(server, model: str) -> int:
    described = requests.get(f"{server.management_url}/models/{model}", timeout=30).json()
    (worker,) = described[0]["workers"]
    return worker["pid"]


def post_together(url: str, bodies: list) -> list:
    """All bodies at once, so that TorchServe gathers them into one handler call."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: requests.post(url, data=body, timeout=300), bodies))


def test_served_batch_of_8_fails_the_marked_request_alone(faulty_server, image_files):
    url = f"{faulty_server.inference_url}/predictions/crnn_faulty"
    word, marked = image_files["word.png"].read_bytes(), image_files["word.jpg"].read_bytes()
    pid = worker_pid(faulty_server, "crnn_faulty")
    answers = post_together(url, [marked if slot == MARKED else word for slot in range(BATCH)])

    failed = answers[MARKED]
    assert failed.status_code == 500, failed.text
    body = failed.json()
    assert (body["code"], body["type"]) == (500, "InferenceError") and faults.MESSAGE in body["message"]
    for slot, answer in enumerate(answers):
        if slot != MARKED:
            assert answer.status_code == 200 and answer.json()["text"] == WORD, (slot, answer.text)
    assert worker_pid(faulty_server, "crnn_faulty") == pid
    again = requests.post(url, data=word, timeout=300)
    assert again.status_code == 200 and again.json()["text"] == WORD


def test_served_end_to_end_fails_the_page_whose_crop_fails(faulty_server, image_files, rendered):
    url = f"{faulty_server.inference_url}/predictions/ocr_faulty"
    marked_page, other_page = (image_files[name].read_bytes() for name in ("scene.jpg", "scene.png"))
    pid = worker_pid(faulty_server, "ocr_faulty")
    failed, read = post_together(url, [marked_page, other_page])

    assert failed.status_code == 500, failed.text
    body = failed.json()
    assert body["type"] == "InferenceError" and faults.MESSAGE in body["message"]
    assert body["message"].startswith("text region ")  # names the region at fault
    assert read.status_code == 200, read.text
    words = sorted(w.text for w in rendered["scene.png"].words)
    assert words and sorted(item["text"] for item in read.json()["result"]) == words
    assert worker_pid(faulty_server, "ocr_faulty") == pid


def test_aiges_wrapper_answers_the_inference_error_code(recog_checkpoint, image_files):
    import wrapper
    from aiges_loader import FunctionLoader
    from mmocr_serve.loading import resolve_config_path

    loader = FunctionLoader(wrapper)
    assert loader.init(dict(recog_config=str(resolve_config_path(RECOG_CONFIG)),
                            recog_checkpoint=str(recog_checkpoint))) == 0
    faults.install(MARKED_WORD)
    try:
        marked = loader.once([("data", image_files["word.jpg"].read_bytes())])
        normal = loader.once([("data", image_files["word.png"].read_bytes())])
    finally:
        faults.remove()
        wrapper.wrapperFini()
    assert marked == (codes.INFERENCE_FAILED, "the model failed on this image")
    assert normal[0] == 0 and normal[1]["text"] == WORD
