"""Each test's layer marker, from its directory; shared fixtures: the trained demo models,
archives, rendered images and a real TorchServe."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from clis import ROOT, convert
from images import encode, rendered_page, rendered_word

TESTS = Path(__file__).resolve().parent
# tests/<layer>/test_*.py: the layer is the test's marker (setup.cfg describes each). A swarm
# test is a docker test too: both need the engine and the images.
LAYERS = {"unit": (), "handler": (), "integration": (), "docker": (), "swarm": ("docker",)}


def pytest_itemcollected(item) -> None:
    layer = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
    if layer not in LAYERS:
        raise pytest.UsageError(f"{item.nodeid}: a test lives in one of tests/{{{','.join(LAYERS)}}}/")
    for marker in (layer, *LAYERS[layer]):
        item.add_marker(marker)


# The detector and recognizer trained by tools/train_demo_models.py (demo/models/README.md)
DET_CONFIG = str(ROOT / "demo" / "models" / "dbnet_demo.py")
RECOG_CONFIG = str(ROOT / "demo" / "models" / "crnn_demo.py")
DET_CHECKPOINT = ROOT / "demo" / "models" / "dbnet_demo.pth"
RECOG_CHECKPOINT = ROOT / "demo" / "models" / "crnn_demo.pth"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mmocr-serve")


@pytest.fixture(scope="session")
def det_checkpoint() -> Path:
    return DET_CHECKPOINT


@pytest.fixture(scope="session")
def recog_checkpoint() -> Path:
    return RECOG_CHECKPOINT


@pytest.fixture(scope="session")
def model_store(workdir, det_checkpoint, recog_checkpoint) -> Path:
    """dbnet.mar, crnn.mar and ocr.mar (both), built by the converter's own function."""
    from mmocr_serve_tools.archive import ArchiveSpec, build_archive

    store = workdir / "model-store"
    for name, config, ckpt in (("dbnet", DET_CONFIG, det_checkpoint),
                               ("crnn", RECOG_CONFIG, recog_checkpoint)):
        build_archive(ArchiveSpec.flat(config=config, checkpoint=str(ckpt), output_folder=str(store),
                                  model_name=name, batch_size=4, max_batch_delay_ms=100))
    build_archive(ArchiveSpec.flat(config=DET_CONFIG, checkpoint=str(det_checkpoint),
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


# Rendered test images and what is on them: pages with their words, and word crops. The
# seeds are the first from 11 whose pages (four words or more) the demo models read without a mistake (their
# accuracy is tools/evaluate_demo_models.py's to measure), so that a test here fails on a
# difference between served and in-process, not on accuracy.
PAGES = {"scene.jpg": dict(seed=18, size=(640, 360)), "scene.png": dict(seed=16, size=(640, 400))}
WORDS = {"word.png": dict(seed=13, text="serve"), "word.jpg": dict(seed=14, text="ocr42")}


@pytest.fixture(scope="session")
def rendered(workdir) -> dict:
    """Each test image's file name -> its ``synth.Page`` (pages) or its text (word crops)."""
    truth = {name: rendered_page(**spec) for name, spec in PAGES.items()}
    truth.update({name: spec["text"] for name, spec in WORDS.items()})
    return truth


@pytest.fixture(scope="session")
def image_files(workdir, rendered) -> dict:
    """The rendered test images on disk: two pages (JPEG and PNG) and two word crops."""
    out = workdir / "images"
    out.mkdir(exist_ok=True)
    files = {}
    for name, truth in rendered.items():
        fmt = "PNG" if name.endswith(".png") else "JPEG"
        image = (truth.image if hasattr(truth, "image")
                 else rendered_word(WORDS[name]["seed"], truth))
        files[name] = out / name
        files[name].write_bytes(encode(image, fmt, quality=95))
    return files


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
    from mmocr_serve_tools.deployment_check import readtext_reference

    return readtext_reference(DET_CONFIG, det_checkpoint, RECOG_CONFIG, recog_checkpoint)


@pytest.fixture(scope="session")
def onnx_store(workdir) -> Path:
    """crnn_onnx.mar (batch size 1) and ocr_onnx.mar, made with the converter's CLI."""
    store = workdir / "onnx-store"
    for name, extra in (("crnn_onnx", [RECOG_CONFIG, RECOG_CHECKPOINT, "--batch-size", "1"]),
                        ("ocr_onnx", [DET_CONFIG, DET_CHECKPOINT, "--recog-config", RECOG_CONFIG,
                                      "--recog-checkpoint", RECOG_CHECKPOINT])):
        done = convert(*extra, "--output-folder", store, "--model-name", name,
                       "--backend", "onnxruntime")
        assert done.returncode == 0, done.stdout + done.stderr
    return store


@pytest.fixture(scope="session")
def torchserve(model_store, workdir):
    """A real TorchServe (Java frontend, Python workers) on free loopback ports."""
    from mmocr_serve_tools.server import TorchServeProcess

    server = TorchServeProcess(model_store=model_store,
                               models=["dbnet=dbnet.mar", "crnn=crnn.mar", "ocr=ocr.mar"],
                               workdir=workdir / "torchserve")
    server.start(timeout_s=300)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def triton_repo(workdir) -> Path:
    """A Triton model repository written by the converter's CLI (``--format triton``): the
    detector, the recognizer (batch 8, 100 ms queue delay), the recognizer in ONNX Runtime
    and the end-to-end pair."""
    repo = workdir / "triton-repo"
    e2e = [DET_CONFIG, DET_CHECKPOINT, "--recog-config", RECOG_CONFIG,
           "--recog-checkpoint", RECOG_CHECKPOINT, "--batch-size", "4"]
    for name, extra in (("dbnet", [DET_CONFIG, DET_CHECKPOINT]),
                        ("crnn", [RECOG_CONFIG, RECOG_CHECKPOINT, "--batch-size", "8",
                                  "--max-batch-delay", "100"]),
                        ("crnn_onnx", [RECOG_CONFIG, RECOG_CHECKPOINT, "--backend", "onnxruntime"]),
                        ("ocr", e2e)):
        done = convert(*extra, "--output-folder", repo, "--model-name", name, "--format", "triton")
        assert done.returncode == 0, done.stdout + done.stderr
    return repo


@pytest.fixture(scope="session")
def triton(triton_repo, workdir):
    """A real tritonserver (nvidia-pytriton's, Python backend) on free loopback ports."""
    from mmocr_serve_tools.triton import TritonProcess

    server = TritonProcess(repository=triton_repo, workdir=workdir / "triton")
    server.start(timeout_s=300)
    yield server
    server.stop()
