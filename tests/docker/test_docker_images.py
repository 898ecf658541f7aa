"""The serving and AIGES images, built from the README's commands and run here.

Where ``debian:bookworm-slim`` (or ``debian:bullseye-slim``) cannot be pulled, the same
Dockerfiles are built on a local image of that Debian release (``scripts/docker-base.sh``).
The serving container gets the trained end-to-end archive and a detector and a recognizer
archive; its answers must equal in-process MMOCR's. The AIGES image runs the loader-emulator
tests inside, under its Python 3.9 and torch 2.8.0.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from answers import assert_detects, assert_reads, assert_same
from conftest import DET_CONFIG, RECOG_CONFIG
from dockerd import (base_image, build, build_serving_image, docker, get_in_container,
                     image_size_mb, readme_command, running_engine)
from polling import wait_until

from mmocr_serve_tools.server import free_port


from clis import ROOT
CONTAINER = f"mmocr-serve-test-{int(time.time())}"
ARCHIVES = ("dbnet.mar", "crnn.mar", "ocr.mar")


@pytest.fixture(scope="module")
def engine(workdir):
    """dockerd (``dockerd.running_engine``)."""
    with running_engine(workdir / "dockerd") as started:
        yield started


@pytest.fixture(scope="module")
def serving_image(engine):
    return build_serving_image()


@pytest.fixture(scope="module")
def container(serving_image, model_store, workdir):
    """The README's ``docker run``, with this test's name, port and model store."""
    store = workdir / "docker-model-store"
    store.mkdir(exist_ok=True)
    store.chmod(0o755)  # the container's uid 1000 reads it
    for name in ARCHIVES:
        shutil.copy(model_store / name, store / name)
        (store / name).chmod(0o644)
    port = free_port()
    command = readme_command("run", serving_image)
    args = [a.replace("./checkpoints", str(store)) for a in command[2:]]
    args = [CONTAINER if a == "mmocr-serve" else f"-p127.0.0.1:{port}:8080" if a == "-p8080:8080"
            else a for a in args]
    docker("rm", "-f", CONTAINER, check=False)
    docker("run", *args)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: all(model_ready(name) for name in ("dbnet", "crnn", "ocr")), 300,
                   "the container's three models ready")
        yield url
    finally:
        logs = docker("logs", "--tail", "80", CONTAINER, check=False)
        print(logs.stdout[-4000:], logs.stderr[-4000:])
        docker("rm", "-f", CONTAINER, check=False)


def in_container(*command: str, timeout: float = 60):
    return docker("exec", CONTAINER, *command, timeout=timeout, check=False)


def management(path: str):
    """GET the management API inside the container (it listens on the container's loopback)."""
    done = get_in_container(CONTAINER, f"http://127.0.0.1:8081{path}", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def model_ready(name: str) -> bool:
    described = management(f"/models/{name}")
    return bool(described) and any(w["status"] == "READY" for w in described[0]["workers"])


def worker_pid(name: str) -> int:
    return management(f"/models/{name}")[0]["workers"][0]["pid"]


def reads_the_word(word: str, answer: dict) -> None:
    assert answer["text"] == word, answer


def test_ping_and_the_healthcheck(container):
    assert requests.get(f"{container}/ping", timeout=10).json()["status"] == "Healthy"
    wait_until(lambda: docker("inspect", "-f", "{{.State.Health.Status}}", CONTAINER)
               .stdout.strip() == "healthy", 240, "HEALTHCHECK healthy")


def test_answers_equal_in_process_inference(container, image_files, rendered, det_checkpoint,
                                            recog_checkpoint, reference_model, readtext):
    from mmocr.apis import model_inference

    from mmocr_serve.results import DetectionResult, Recognition

    for model, name, config, checkpoint, typed, check in (
            ("dbnet", "scene.jpg", DET_CONFIG, det_checkpoint, DetectionResult, assert_detects),
            ("crnn", "word.png", RECOG_CONFIG, recog_checkpoint, Recognition, reads_the_word)):
        path = image_files[name]
        served = requests.post(f"{container}/predictions/{model}", data=path.read_bytes(),
                               timeout=120)
        expected = typed.from_mmocr(
            model_inference(reference_model(config, checkpoint), str(path))).to_dict()
        check(rendered[name], expected)
        assert_same(expected, served.json())

    page = image_files["scene.jpg"]
    served = requests.post(f"{container}/predictions/ocr", data=page.read_bytes(), timeout=120)
    expected = readtext(page)
    assert_reads(rendered["scene.jpg"], expected)
    assert_same(expected, served.json())


def test_a_bad_request_fails_alone_beside_a_good_one(container, image_files, rendered):
    url = f"{container}/predictions/dbnet"
    bodies = [image_files["scene.jpg"].read_bytes(), b"plain text, not an image"]
    with ThreadPoolExecutor(2) as pool:
        good, bad = pool.map(lambda b: requests.post(url, data=b, timeout=120), bodies)
    assert (good.status_code, bad.status_code) == (200, 400)
    assert bad.json()["type"] == "InvalidImage"
    assert_detects(rendered["scene.jpg"], good.json())


def test_runs_as_uid_1000_on_a_read_only_root(container):
    assert in_container("id", "-u").stdout.strip() == "1000"
    users = in_container("sh", "-c", "for p in /proc/[0-9]*; do stat -c %u $p; done").stdout
    assert set(users.split()) == {"1000"}
    refused = in_container("sh", "-c", "touch /home/model-server/x")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_a_killed_worker_is_replaced(container, image_files, rendered):
    old = worker_pid("crnn")
    assert in_container("sh", "-c", f"kill -9 {old}").returncode == 0  # no procps: sh's kill
    wait_until(lambda: model_ready("crnn") and worker_pid("crnn") != old, 180,
               "a new crnn worker")
    answer = requests.post(f"{container}/predictions/crnn",
                           data=image_files["word.png"].read_bytes(), timeout=120)
    assert answer.status_code == 200
    reads_the_word(rendered["word.png"], answer.json())


def test_docker_stop_ends_it_cleanly_within_10_s(container):
    command = readme_command("stop", "mmocr-serve")
    began = time.monotonic()
    docker(*[CONTAINER if a == "mmocr-serve" else a for a in command[1:]], timeout=60)
    took = time.monotonic() - began
    state = json.loads(docker("inspect", "-f", "{{json .State}}", CONTAINER).stdout)
    assert not state["Running"] and state["ExitCode"] == 0, state
    assert took <= 10, f"docker stop took {took:.1f} s"
    assert "TorchServe stopped" in docker("logs", CONTAINER).stdout


def test_a_cpu_quota_sets_the_worker_threads(serving_image, container, workdir):
    """``docker run --cpus 1`` on a machine of more cores: the worker reads the cgroup
    quota, not the host's cores, and its OpenMP threads sleep while they wait."""
    name = f"{CONTAINER}-cpus1"
    store = workdir / "docker-model-store"  # the container fixture's copy
    docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", name, "--cpus", "1", "--mount",
           f"type=bind,source={store},target=/home/model-server/model-store,readonly",
           serving_image, "--models", "crnn=crnn.mar")
    try:
        wait_until(lambda: "model ready" in docker("logs", name, check=False).stdout, 300,
                   "the --cpus 1 container's worker ready")
        ready = [line for line in docker("logs", name).stdout.splitlines() if "model ready" in line]
        assert "1 torch threads (quota: cgroup CPU quota 1)" in ready[0], ready
        assert "OMP_WAIT_POLICY=PASSIVE" in ready[0], ready
    finally:
        docker("rm", "-f", name, check=False)


def test_the_aiges_image_passes_the_loader_tests_under_python_39(engine):
    """The loader's base is not public: a Debian 11 stand-in with its Python 3.9."""
    base = base_image("debian:bullseye-slim", "bullseye")
    standin = readme_aiges_standin()
    build(standin, ["--build-arg", f"BASE={base}"] if base else [])
    command = shlex.split("docker build -t mmocr-serve-aiges:test -f docker/aiges/Dockerfile "
                          "--target test .")
    took = build(command, ["--build-arg", "LOADER_IMAGE=mmocr-serve-loader-standin:py39"])
    print(f"\nAIGES test image: {image_size_mb('mmocr-serve-aiges:test'):.0f} MB, "
          f"build {took:.0f} s")
    versions = docker("run", "--rm", "mmocr-serve-aiges:test", "/opt/venv/bin/python", "-c",
                      "import sys, torch, mmcv; print(sys.version_info[:2], torch.__version__, "
                      "mmcv.__version__)").stdout
    python, torch, mmcv = versions.strip().split("\n")[-1].rsplit(" ", 2)
    assert (python, torch.split("+")[0], mmcv) == ("(3, 9)", "2.8.0", "1.7.2"), versions
    # the wrapper and engine the image carries (PYTHONPATH), the tests from this checkout
    done = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/tmp",
                  "-e", "MPLCONFIGDIR=/tmp/mpl", "-v", f"{ROOT}:/src:ro", "-w", "/src",
                  "mmocr-serve-aiges:test", "/opt/venv/bin/python", "-m", "pytest",
                  "-p", "no:cacheprovider", "-o", "pythonpath=tests", "-q",
                  "tests/handler/test_aiges_wrapper.py", timeout=1200, check=False)
    out = done.stdout + done.stderr
    print(out[-2500:])
    assert done.returncode == 0, out[-4000:]
    # pytest's summary: every test passed, none skipped (the slowest tests' names come before it)
    assert re.search(r"^\d+ passed in [\d.]+s", out.strip().splitlines()[-1]), out[-4000:]
    assert "/home/mmocr-serve/wrapper.py" in docker(
        "run", "--rm", "mmocr-serve-aiges:test", "/opt/venv/bin/python", "-c",
        "import wrapper; print(wrapper.__file__)").stdout


def readme_aiges_standin() -> list:
    text = (ROOT / "docker" / "aiges" / "Dockerfile.loader-standin").read_text()
    line = next(line for line in text.splitlines() if "docker build" in line)
    return shlex.split(line.split("DOCKER_BUILDKIT=1", 1)[1])
