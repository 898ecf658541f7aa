"""Shared fixtures: random-initialised checkpoints, archives, images and a real TorchServe."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from images import encode, text_image

DET_CONFIG = "textdet/dbnet/dbnet_r18_fpnc_1200e_icdar2015.py"
RECOG_CONFIG = "textrecog/crnn/crnn_academic_dataset.py"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mmocr-serve")


@pytest.fixture(scope="session")
def det_checkpoint(workdir) -> Path:
    from mmocr_serve.loading import save_random_checkpoint

    return save_random_checkpoint(DET_CONFIG, workdir / "ckpt" / "dbnet_r18.pth", seed=0)


@pytest.fixture(scope="session")
def recog_checkpoint(workdir) -> Path:
    from mmocr_serve.loading import save_random_checkpoint

    return save_random_checkpoint(RECOG_CONFIG, workdir / "ckpt" / "crnn.pth", seed=0)


@pytest.fixture(scope="session")
def model_store(workdir, det_checkpoint, recog_checkpoint) -> Path:
    """dbnet.mar, crnn.mar and ocr.mar (both), built by the converter's own function."""
    from mmocr_serve.archive import ArchiveSpec, build_archive

    store = workdir / "model-store"
    for name, config, ckpt in (("dbnet", DET_CONFIG, det_checkpoint),
                               ("crnn", RECOG_CONFIG, recog_checkpoint)):
        build_archive(ArchiveSpec(config=config, checkpoint=str(ckpt), output_folder=str(store),
                                  model_name=name, batch_size=4, max_batch_delay_ms=100))
    build_archive(ArchiveSpec(config=DET_CONFIG, checkpoint=str(det_checkpoint),
                              recog_config=RECOG_CONFIG, recog_checkpoint=str(recog_checkpoint),
                              output_folder=str(store), model_name="ocr", batch_size=4))
    return store


def unpack(archive: Path, dest: Path) -> Path:
    """What TorchServe does with a .mar: extract it into a model directory."""
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


@pytest.fixture(scope="session")
def det_model_dir(model_store, workdir) -> Path:
    return unpack(model_store / "dbnet.mar", workdir / "unpacked" / "dbnet")


@pytest.fixture(scope="session")
def recog_model_dir(model_store, workdir) -> Path:
    return unpack(model_store / "crnn.mar", workdir / "unpacked" / "crnn")


@pytest.fixture(scope="session")
def image_files(workdir) -> dict:
    """Named test images on disk: a detection scene in two formats and a word crop."""
    out = workdir / "images"
    out.mkdir(exist_ok=True)
    files = {
        "scene.jpg": encode(text_image("Hello MMOCR serve", (640, 360)), "JPEG", quality=92),
        "scene.png": encode(text_image("TorchServe 2026", (480, 320)), "PNG"),
        "word.png": encode(text_image("serve", (128, 32)), "PNG"),
        "word.jpg": encode(text_image("OCR42", (100, 32)), "JPEG", quality=95),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    return {name: out / name for name in files}


@pytest.fixture(scope="session")
def reference_model():
    """In-process MMOCR models built from a config + checkpoint, as a user would."""
    from mmocr.apis import init_detector

    import mmocr.datasets  # noqa: F401  (registers the pipelines model_inference needs)
    from mmocr_serve.loading import resolve_config_path

    cache = {}

    def get(config: str, checkpoint: Path):
        key = (config, str(checkpoint))
        if key not in cache:
            cache[key] = init_detector(str(resolve_config_path(config)), str(checkpoint),
                                       device="cpu")
        return cache[key]

    return get


@pytest.fixture(scope="session")
def ocr_model_dir(model_store, workdir) -> Path:
    return unpack(model_store / "ocr.mar", workdir / "unpacked" / "ocr")


@pytest.fixture(scope="session")
def readtext(det_checkpoint, recog_checkpoint):
    """MMOCR 0.6.3's own end-to-end OCR with the same configs and checkpoints."""
    from mmocr_serve.deployment_check import readtext_reference

    return readtext_reference(DET_CONFIG, det_checkpoint, RECOG_CONFIG, recog_checkpoint)


@pytest.fixture(scope="session")
def torchserve(model_store, workdir):
    """A real TorchServe (Java frontend, Python workers) on free loopback ports."""
    from mmocr_serve.server import TorchServeProcess

    server = TorchServeProcess(model_store=model_store,
                               models=["dbnet=dbnet.mar", "crnn=crnn.mar", "ocr=ocr.mar"],
                               workdir=workdir / "torchserve")
    server.start(timeout_s=300)
    yield server
    server.stop()
