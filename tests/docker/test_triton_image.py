"""The Triton image (docker/serve/Dockerfile's ``triton`` target), built and run with the
README's commands, on a Triton repository written by the converter: its answers equal
in-process MMOCR's, it runs read-only as uid 1000, it is healthy, a dead model process
makes it exit and its restart policy bring it back, and ``docker stop`` ends it cleanly.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from answers import assert_detects, assert_reads, assert_same
from conftest import DET_CONFIG, RECOG_CONFIG
from dockerd import (base_image, build, docker, image_size_mb, readme_command,
                     running_engine)
from polling import wait_until
from triton_client import Published, infer, ready

from mmocr_serve_tools.server import free_port

TAG = "mmocr-serve:triton"
CONTAINER = f"mmocr-triton-test-{int(time.time())}"
ENTRIES = ("dbnet", "crnn", "ocr")


@pytest.fixture(scope="module")
def engine(workdir):
    """dockerd (``dockerd.running_engine``)."""
    with running_engine(workdir / "dockerd") as started:
        yield started


@pytest.fixture(scope="module")
def triton_image(engine):
    command = readme_command("build", TAG)
    base = base_image("debian:bookworm-slim", "bookworm")
    took = build(command, ["--build-arg", f"BASE={base}"] if base else [])
    print(f"\nTriton image: {image_size_mb(TAG):.0f} MB; build {took:.0f} s")
    return TAG


@pytest.fixture(scope="module")
def container(triton_image, triton_repo, workdir):
    """The README's ``docker run``, with this test's name, ports and repository."""
    repo = workdir / "docker-triton-repo"
    shutil.rmtree(repo, ignore_errors=True)
    for name in ENTRIES:
        shutil.copytree(triton_repo / name, repo / name)
    for path in [repo, *repo.rglob("*")]:  # the container's uid 1000 reads it
        path.chmod(0o755 if path.is_dir() else 0o644)
    http, grpc = free_port(), free_port()
    command = readme_command("run", triton_image)
    args = [a.replace("./model-repository", str(repo)) for a in command[2:]]
    args = [CONTAINER if a == "mmocr-triton" else a for a in args]
    at = args.index("-p8000:8000")
    args[at:at + 1] = [f"-p127.0.0.1:{http}:8000", f"-p127.0.0.1:{grpc}:8001"]
    docker("rm", "-f", CONTAINER, check=False)
    docker("run", *args)
    server = Published(http, grpc)
    try:
        wait_until(lambda: ready(server), 300, "the Triton container's models ready")
        yield server
    finally:
        logs = docker("logs", "--tail", "60", CONTAINER, check=False)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        docker("rm", "-f", CONTAINER, check=False)


def in_container(*command: str):
    return docker("exec", CONTAINER, *command, timeout=60, check=False)


def test_healthy_read_only_and_uid_1000(container):
    wait_until(lambda: docker("inspect", "-f", "{{.State.Health.Status}}", CONTAINER)
               .stdout.strip() == "healthy", 240, "HEALTHCHECK healthy")
    assert in_container("id", "-u").stdout.strip() == "1000"
    users = in_container("sh", "-c", "for p in /proc/[0-9]*; do stat -c %u $p; done").stdout
    assert set(users.split()) == {"1000"}
    refused = in_container("sh", "-c", "touch /home/model-server/x")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_answers_equal_in_process_inference(container, image_files, rendered, det_checkpoint,
                                            recog_checkpoint, reference_model, readtext):
    from mmocr.apis import model_inference

    from mmocr_serve.results import DetectionResult, Recognition

    page = image_files["scene.jpg"]
    served = infer(container, "dbnet", page.read_bytes())
    expected = DetectionResult.from_mmocr(model_inference(
        reference_model(DET_CONFIG, det_checkpoint), str(page))).to_dict()
    assert_detects(rendered["scene.jpg"], expected)
    assert_same(expected, served)
    word = image_files["word.png"]
    served = infer(container, "crnn", word.read_bytes(), protocol="grpc")
    expected = Recognition.from_mmocr(model_inference(
        reference_model(RECOG_CONFIG, recog_checkpoint), str(word))).to_dict()
    assert expected["text"] == rendered["word.png"]
    assert_same(expected, served)
    expected = readtext(page)
    assert_reads(rendered["scene.jpg"], expected)
    assert_same(expected, infer(container, "ocr", page.read_bytes()))


def test_a_killed_model_process_restarts_the_container(container, image_files, rendered):
    """Triton does not restart a dead stub; the supervisor exits 1, and the README's
    ``--restart on-failure`` brings the container, and the model, back."""
    def restarts() -> int:
        return json.loads(docker("inspect", "-f", "{{json .RestartCount}}", CONTAINER).stdout)

    before = restarts()
    kill = ("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline | grep -q "
            "'^[^ ]*triton_python_backend_stub [^ ]*/crnn/1/model[.]py' && kill -9 ${p#/proc/} && echo killed; done")
    assert "killed" in in_container("sh", "-c", kill).stdout
    wait_until(lambda: restarts() > before, 120, "the container restarted")
    wait_until(lambda: ready(container), 300, "the restarted container's models ready")
    assert infer(container, "crnn", image_files["word.png"].read_bytes())["text"] == \
        rendered["word.png"]
    logs = docker("logs", CONTAINER, check=False)
    assert "stub of" in logs.stderr + logs.stdout


def test_docker_stop_ends_it_cleanly(container):
    command = readme_command("stop", "mmocr-triton")
    began = time.monotonic()
    docker(*[CONTAINER if a == "mmocr-triton" else a for a in command[1:]], timeout=60)
    took = time.monotonic() - began
    state = json.loads(docker("inspect", "-f", "{{json .State}}", CONTAINER).stdout)
    assert not state["Running"] and state["ExitCode"] == 0, state
    assert took <= 10, f"docker stop took {took:.1f} s"
